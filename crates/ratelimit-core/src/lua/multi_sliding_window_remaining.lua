#!lua flags=allow-key-locking
-- Multi-region sliding window, getRemaining(): the requests the sliding window covers, read only.
-- KEYS: current window's hash "P:I:<bucket>", previous window's hash "P:I:<bucket-1>"
-- ARGV: now ms, window ms
-- Reply: current total + floor(previous total * share of the previous window still covered),
--        as an integer
-- Mirror of ratelimit-core's MultiSlidingWindow::remaining_step (keep the two in step).
local function total(entries)
  local sum = 0
  for i = 2, #entries, 2 do
    sum = sum + tonumber(entries[i])
  end
  return sum
end

local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = (now % window) / window
local in_current = total(redis.call("HGETALL", KEYS[1]))
local in_previous = total(redis.call("HGETALL", KEYS[2]))
return in_current + math.floor((1 - elapsed) * in_previous)
