-- resetUsedTokens(): delete every key matching a pattern, a page of SCAN at a time.
-- KEYS: the SCAN MATCH pattern (glob characters of the prefix and identifier escaped)
-- ARGV: none, or a literal key prefix "P:I:": then only keys made of that prefix and an integer
--       (window buckets) are deleted, so resetting "user" spares "user:1"'s "P:user:1:<bucket>"
-- Reply: the number of keys deleted
local pattern = KEYS[1]
local bucket_prefix = ARGV[1]
local cursor = "0"
local deleted = 0
repeat
  local page = redis.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local wanted = true
    if bucket_prefix then
      wanted = string.sub(key, 1, #bucket_prefix) == bucket_prefix
        and string.find(key, "^%-?%d+$", #bucket_prefix + 1) ~= nil
    end
    if wanted then
      deleted = deleted + redis.call("DEL", key)
    end
  end
until cursor == "0"
return deleted
