#!lua flags=allow-key-locking
-- Cached fixed window, limit(): count the request in the current window's counter.
-- KEYS: counter "P:I:<bucket>"
-- ARGV: window ms, increment (the call's rate)
-- Reply: the counter after the increment
-- Mirror of ratelimit-core's CachedFixedWindow::limit_step.
local count = redis.call("INCRBY", KEYS[1], ARGV[2])
-- Started from nothing: set the TTL. (Upstream compares with the string ARGV and so never
-- sets one; comparing numbers is our deliberate fix.)
if count == tonumber(ARGV[2]) then
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return count
