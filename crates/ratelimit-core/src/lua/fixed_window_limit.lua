#!lua flags=allow-key-locking
-- Fixed window, limit(): count the request in the current window's counter.
-- KEYS: counter "P:I:<bucket>" [, dynamic limit "P:dynamic:global"]
-- ARGV: tokens, window ms, increment (the call's rate)
-- Reply: {counter after the increment, effective limit}
-- Mirror of ratelimit-core's FixedWindow::limit_step (keep the two in step).
local counter_key = KEYS[1]
local limit = tonumber(ARGV[1])
-- Dynamic limits, most specific first (per identifier, then the global one): the first set wins.
for i = 2, #KEYS do
  local dynamic = redis.call("GET", KEYS[i])
  if dynamic then
    limit = tonumber(dynamic)
    break
  end
end

-- Counted even when over the limit: a rejected request still consumes (upstream quirk Q3).
local count = redis.call("INCRBY", counter_key, ARGV[3])
-- The counter equals the increment exactly when it started from nothing: set the TTL then.
if count == tonumber(ARGV[3]) then
  redis.call("PEXPIRE", counter_key, ARGV[2])
end
return {count, limit}
