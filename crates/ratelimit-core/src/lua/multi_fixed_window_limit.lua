#!lua flags=allow-key-locking
-- Multi-region fixed window, limit(): record this request in the window's hash of request ids
-- (every request, also one over the limit), then answer with everything the hash holds.
-- KEYS: the window's hash "P:I:<bucket>" (request id -> rate)
-- ARGV: request id, window ms, the call's rate
-- Reply: the hash as HGETALL lists it, {id1, rate1, id2, rate2, ...}, this request included
-- Mirror of ratelimit-core's MultiFixedWindow::limit_step (keep the two in step).
local hash_key = KEYS[1]
local amount = tonumber(ARGV[3])

-- The rate is stored as a Lua number (Redis writes it with "%.17g"), as upstream stores it.
redis.call("HSET", hash_key, ARGV[1], amount)
local entries = redis.call("HGETALL", hash_key)
-- Our entry alone: the hash was just created, so its TTL starts now.
if #entries == 2 and tonumber(entries[2]) == amount then
  redis.call("PEXPIRE", hash_key, ARGV[2])
end
return entries
