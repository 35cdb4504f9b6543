#!lua flags=allow-key-locking
-- Fixed window, getRemaining(): read the current window's counter.
-- KEYS: counter "P:I:<bucket>" [, dynamic limit "P:dynamic:global"]
-- ARGV: tokens
-- Reply: {effective limit - used, effective limit}
-- Mirror of ratelimit-core's FixedWindow::remaining_step.
local limit = tonumber(ARGV[1])
-- Dynamic limits, most specific first (per identifier, then the global one): the first set wins.
for i = 2, #KEYS do
  local dynamic = redis.call("GET", KEYS[i])
  if dynamic then
    limit = tonumber(dynamic)
    break
  end
end

local used = tonumber(redis.call("GET", KEYS[1]) or "0")
return {limit - used, limit}
