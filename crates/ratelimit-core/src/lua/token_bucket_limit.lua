#!lua flags=allow-key-locking
-- Token bucket, limit(): refill by whole intervals, then take the request's tokens.
-- KEYS: bucket hash "P:I" {refilledAt, tokens} [, dynamic limit "P:dynamic:global"]
-- ARGV: maxTokens, interval ms, refillRate, now ms, increment (the call's rate)
-- Reply: {tokens left, or -1 when rejected, next refill time, effective limit}
-- Mirror of ratelimit-core's TokenBucket::limit_step (keep the two in step).
local bucket_key = KEYS[1]
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local refill_rate = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local increment = tonumber(ARGV[5])
-- Dynamic limits, most specific first (per identifier, then the global one): the first set wins.
for i = 2, #KEYS do
  local dynamic = redis.call("GET", KEYS[i])
  if dynamic then
    limit = tonumber(dynamic)
    break
  end
end

-- A missing bucket is a full one, last refilled now.
local stored = redis.call("HMGET", bucket_key, "refilledAt", "tokens")
local refilled_at = now
local tokens = limit
if stored[1] then
  refilled_at = tonumber(stored[1])
  tokens = tonumber(stored[2])
end

-- Each whole interval since the last refill adds refill_rate tokens, up to the limit.
if now >= refilled_at + interval then
  local refills = math.floor((now - refilled_at) / interval)
  tokens = math.min(limit, tokens + refills * refill_rate)
  refilled_at = refilled_at + refills * interval
end

-- Not enough tokens for a consuming request: refuse without taking any.
if increment > 0 and tokens < increment then
  return {-1, refilled_at + interval, limit}
end

local remaining = tokens - increment
-- Time until refills would make the bucket full again; past that the hash can go.
local ttl = math.ceil((limit - remaining) / refill_rate) * interval
redis.call("HSET", bucket_key, "refilledAt", refilled_at, "tokens", remaining)
if ttl > 0 then
  redis.call("PEXPIRE", bucket_key, ttl)
end
return {remaining, refilled_at + interval, limit}
