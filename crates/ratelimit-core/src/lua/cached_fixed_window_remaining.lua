#!lua flags=allow-key-locking
-- Cached fixed window, getRemaining(): the current window's counter.
-- KEYS: counter "P:I:<bucket>"
-- Reply: the stored counter as Redis holds it (a bulk string), or the integer 0 when missing
-- Mirror of ratelimit-core's CachedFixedWindow::remaining_step.
local value = redis.call("GET", KEYS[1])
if value then
  return value
end
return 0
