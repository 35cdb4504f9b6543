#!lua flags=allow-key-locking
-- Sliding window, limit(): weigh the previous window's counter by how much of it the sliding
-- window still covers, add the current one, and count the request if under the limit.
-- KEYS: current counter "P:I:<bucket>", previous counter "P:I:<bucket-1>"
--       [, dynamic limit "P:dynamic:global"]
-- ARGV: tokens, now ms, window ms, increment (the call's rate)
-- Reply: {effective limit - (current + weighted previous) after counting, effective limit},
--        or {-1, effective limit} when rejected (nothing written then)
-- Mirror of ratelimit-core's SlidingWindow::limit_step (keep the two in step).
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local increment = tonumber(ARGV[4])
-- Dynamic limits, most specific first (per identifier, then the global one): the first set wins.
for i = 3, #KEYS do
  local dynamic = redis.call("GET", KEYS[i])
  if dynamic then
    limit = tonumber(dynamic)
    break
  end
end

local current = tonumber(redis.call("GET", KEYS[1]) or "0")
local previous = tonumber(redis.call("GET", KEYS[2]) or "0")
local elapsed = (now % window) / window
local weighted_previous = math.floor((1 - elapsed) * previous)

-- Refunds (increment <= 0) are never refused. The check ignores the size of the increment
-- (upstream quirk Q3): a large rate passes it, is counted, and the reply goes negative.
if increment > 0 and weighted_previous + current >= limit then
  return {-1, limit}
end

-- The increment goes to INCRBY as a Lua number (formatted "%.17g" by Redis), as upstream does.
local count = redis.call("INCRBY", KEYS[1], increment)
-- Started from nothing: keep the counter long enough to serve as the next "previous" window.
if count == increment then
  redis.call("PEXPIRE", KEYS[1], window * 2 + 1000)
end
return {limit - (count + weighted_previous), limit}
