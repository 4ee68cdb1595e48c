-- Check every limit that applies to one request, count it if all allow it, and record usage:
-- one atomic call per request (see ratelimit.py for the argument layout).
--
-- Rate limits are sliding windows made of sub-buckets (a hash: bucket index -> count): the
-- count is exact over the last `window` to within one bucket (1/60 of a minute, ...), so a
-- burst at a window boundary cannot double the limit the way a fixed window lets it.
-- Quotas are calendar windows (the key carries the day or month): a plain counter.
-- A refused request consumes nothing.
--
-- KEYS: limit keys..., usage hash
-- ARGV: now_ms, n_limits, then per limit: kind ("r"|"q"), limit, window_ms, bucket_ms (r) or
--       reset_at_ms (q); then usage prefix ("" = none), last-used field ("" = none), now_s,
--       then delta pairs: field, increment ...

local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local a = 3
local specs = {}
local best_idx, best_remaining, best_reset, best_limit = 0, -1, 0, 0
local refused = 0

for i = 1, n do
  local kind, limit, p1, p2 = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  local key = KEYS[i]
  local count, reset_ms, bucket
  if kind == "r" then
    local window, bucket_ms = p1, p2
    local nb = math.floor(window / bucket_ms)
    bucket = math.floor(now / bucket_ms)
    local oldest_live = bucket - nb + 1
    local raw = redis.call("HGETALL", key)
    count = 0
    local live = {}
    for j = 1, #raw, 2 do
      local idx = tonumber(raw[j])
      if idx < oldest_live then
        redis.call("HDEL", key, raw[j])
      else
        local c = tonumber(raw[j + 1])
        count = count + c
        live[#live + 1] = {idx, c}
      end
    end
    table.sort(live, function(x, y) return x[1] < y[1] end)
    -- Time until enough old buckets leave the window for one more request to fit.
    reset_ms = window
    local need = count + 1 - limit
    if #live > 0 then reset_ms = (live[1][1] + nb) * bucket_ms - now end
    if need > 0 then
      local freed = 0
      for j = 1, #live do
        freed = freed + live[j][2]
        if freed >= need then
          reset_ms = (live[j][1] + nb) * bucket_ms - now
          break
        end
      end
    end
    specs[i] = {kind, key, bucket, window}
  else
    count = tonumber(redis.call("GET", key) or "0")
    reset_ms = p1 - now
    specs[i] = {kind, key, 0, reset_ms}
  end
  local remaining = limit - count - 1
  if remaining < 0 then
    if refused == 0 then
      refused = i
      best_idx, best_remaining, best_reset, best_limit = i, 0, reset_ms, limit
    end
  elseif refused == 0 and (best_remaining < 0 or remaining < best_remaining) then
    best_idx, best_remaining, best_reset, best_limit = i, remaining, reset_ms, limit
  end
end

if refused == 0 then
  for i = 1, n do
    local s = specs[i]
    if s[1] == "r" then
      redis.call("HINCRBY", s[2], s[3], 1)
      redis.call("PEXPIRE", s[2], s[4] + 1000)
    else
      redis.call("INCR", s[2])
      redis.call("PEXPIRE", s[2], s[4] + 60000)
    end
  end
end

local usage = KEYS[n + 1]
local prefix, last_field, now_s = ARGV[a], ARGV[a + 1], ARGV[a + 2]
a = a + 3
if prefix ~= "" then
  redis.call("HINCRBY", usage, prefix .. "|req", 1)
  if refused ~= 0 then redis.call("HINCRBY", usage, prefix .. "|429", 1) end
end
if last_field ~= "" then redis.call("HSET", usage, last_field, now_s) end
while a < #ARGV do
  redis.call("HINCRBY", usage, ARGV[a], tonumber(ARGV[a + 1]))
  a = a + 2
end

return {refused == 0 and 1 or 0, best_idx, best_remaining, best_reset, best_limit}
