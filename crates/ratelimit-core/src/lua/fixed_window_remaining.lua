#!lua flags=allow-key-locking
-- Fixed window, getRemaining(): read the current window's counter.
-- KEYS: counter "P:I:<bucket>" [, dynamic limit "P:dynamic:global"]
-- ARGV: tokens
-- Reply: {effective limit - used, effective limit}
-- Mirror of ratelimit-core's FixedWindow::remaining_step.
local limit = tonumber(ARGV[1])
if KEYS[2] then
  local dynamic = redis.call("GET", KEYS[2])
  if dynamic then
    limit = tonumber(dynamic)
  end
end

local used = tonumber(redis.call("GET", KEYS[1]) or "0")
return {limit - used, limit}
