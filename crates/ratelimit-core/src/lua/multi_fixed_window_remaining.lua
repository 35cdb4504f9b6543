#!lua flags=allow-key-locking
-- Multi-region fixed window, getRemaining(): the window's hash of request ids, read only.
-- KEYS: the window's hash "P:I:<bucket>"
-- ARGV: none
-- Reply: {id1, rate1, id2, rate2, ...}, empty when the window has no requests
-- Mirror of ratelimit-core's MultiFixedWindow::remaining_step.
return redis.call("HGETALL", KEYS[1])
