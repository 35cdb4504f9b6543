#!lua flags=allow-key-locking
-- Token bucket, getRemaining(): the stored bucket as is, with no refill applied (quirk Q5).
-- KEYS: bucket hash "P:I" [, dynamic limit "P:dynamic:global"]
-- ARGV: maxTokens
-- Reply: {tokens, refilledAt, effective limit}, or {effective limit, -1, effective limit}
--        when there is no bucket
-- Mirror of ratelimit-core's TokenBucket::remaining_step.
local limit = tonumber(ARGV[1])
-- Dynamic limits, most specific first (per identifier, then the global one): the first set wins.
for i = 2, #KEYS do
  local dynamic = redis.call("GET", KEYS[i])
  if dynamic then
    limit = tonumber(dynamic)
    break
  end
end

local stored = redis.call("HMGET", KEYS[1], "refilledAt", "tokens")
if not stored[1] then
  return {limit, -1, limit}
end
return {tonumber(stored[2]), tonumber(stored[1]), limit}
