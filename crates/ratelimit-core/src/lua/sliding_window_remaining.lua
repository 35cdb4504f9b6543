#!lua flags=allow-key-locking
-- Sliding window, getRemaining(): the same weighted sum as limit(), without counting.
-- KEYS: current counter "P:I:<bucket>", previous counter "P:I:<bucket-1>"
--       [, dynamic limit "P:dynamic:global"]
-- ARGV: tokens, now ms, window ms
-- Reply: {effective limit - (current + weighted previous), effective limit}
-- Mirror of ratelimit-core's SlidingWindow::remaining_step.
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
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
return {limit - (weighted_previous + current), limit}
