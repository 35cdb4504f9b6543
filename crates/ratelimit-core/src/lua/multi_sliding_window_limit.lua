#!lua flags=allow-key-locking
-- Multi-region sliding window, limit(): weigh the previous window's requests by how much of it
-- the sliding window still covers, add the current window's, and record this request if it fits.
-- KEYS: current window's hash "P:I:<bucket>", previous window's hash "P:I:<bucket-1>"
--       (request id -> rate)
-- ARGV: tokens, now ms, window ms, request id, the call's rate
-- Reply: {current entries as they were before this call, previous entries, 1 if recorded / nil}
-- Mirror of ratelimit-core's MultiSlidingWindow::limit_step (keep the two in step).
local function total(entries)
  local sum = 0
  for i = 2, #entries, 2 do
    sum = sum + tonumber(entries[i])
  end
  return sum
end

local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local amount = tonumber(ARGV[5])

local current = redis.call("HGETALL", KEYS[1])
local previous = redis.call("HGETALL", KEYS[2])
local in_current = total(current)
local in_previous = total(previous)
local elapsed = (now % window) / window

-- Refunds (amount <= 0) always pass. The check counts this request's own amount, so a request
-- that does not fit is refused and not recorded.
if amount > 0 and in_previous * (1 - elapsed) + in_current + amount > limit then
  return {current, previous, false}
end

redis.call("HSET", KEYS[1], ARGV[4], amount)
-- The window held nothing (or entries that cancel out): (re)start its TTL, long enough for it to
-- serve as the next window's "previous".
if in_current == 0 then
  redis.call("PEXPIRE", KEYS[1], window * 2 + 1000)
end
return {current, previous, true}
