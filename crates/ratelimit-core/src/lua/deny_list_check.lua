#!lua flags=allow-key-locking
-- Protection, on its own: which of the request's values (identifier, ip, user agent, country)
-- are on the deny list, and whether the automatic IP list needs a refresh.
-- KEYS: the deny list set "P:denyList:all", the IP list status "P:ipDenyListStatus"
-- ARGV: the values to check (none → nothing is looked up)
-- Reply: {{1|0 per value}, TTL of the status key}; a missing status (TTL -2) is marked "pending"
-- for 30 s, so that one caller per 30 s refreshes the IP list.
local denied = {}
if #ARGV > 0 then
  denied = redis.call("SMISMEMBER", KEYS[1], unpack(ARGV))
end
local status = redis.call("TTL", KEYS[2])
if status == -2 then
  redis.call("SETEX", KEYS[2], 30, "pending")
end
return {denied, status}
