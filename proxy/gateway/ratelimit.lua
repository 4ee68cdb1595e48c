-- Check every limit that applies to one request, count it if all allow it, and record usage:
-- one atomic call per request (see ratelimit.py for the argument layout).
--
-- Rate limits are sliding windows made of sub-buckets: the count is exact over the last
-- `window` to within one bucket (1/60 of a minute, ...), so a burst at a window boundary cannot
-- double the limit the way a fixed window lets it. A window is a hash (one key per window):
--   <bucket index> = count     t = total of the live buckets
--   o = oldest non-empty live bucket     l = newest bucket written
-- A request reads t, o, l and its own bucket in one HMGET. Only when the window has
-- slid past o (at most once per bucket period) are the buckets that left read, deleted in one
-- HDEL and subtracted, and o moved to the next non-empty bucket. The exact time until one more
-- request fits (Retry-After) needs the live buckets themselves: read only when refusing.
-- Quotas are calendar windows (the key carries the day or month): plain counters, read with one
-- MGET. Expiry is set when a key or bucket is created, not on every request.
-- A refused request consumes nothing.
--
-- Written for Redis' Lua 5.1 interpreter, where the script's own work costs as much as its
-- commands: per-limit state is a positional table (no hash part), and numbers are turned into
-- strings (sprintf inside Lua) only where a field name or a written value needs one.
--
-- KEYS: limit keys..., usage hash
-- ARGV: now_ms, n_limits, then per limit: kind ("r"|"q"), limit, window_ms, bucket_ms (r) or
--       reset_at_ms (q); then usage prefix ("" = none), last-used field ("" = none), now_s,
--       then delta pairs: field, increment ...

local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local call = redis.call
local floor = math.floor

-- A window's state, positional: 1 key, 2 limit, 3 window, 4 bucket ms, 5 field prefix,
-- 6 buckets per window, 7 own bucket, 8 own bucket's field, 9 position in its hash's HMGET,
-- 10 count, 11 own bucket's count, 12 oldest, 13 newest, 14 dirty (buckets were dropped).
-- A quota's: 1 key, 2 limit, 3 ms until its reset, 10 count.
local specs = {}
local hash_fields, hash_windows, hash_order = {}, {}, {}
local quota_keys, quota_specs = {}, {}
local a = 3
for i = 1, n do
  local key, limit = KEYS[i], tonumber(ARGV[a + 1])
  if ARGV[a] == "r" then
    local window, bucket_ms = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local ns = ""  -- field prefix: one window per hash (the explain view reads bare bucket fields)
    local bucket = floor(now / bucket_ms)
    -- The bucket's field name. For 100 ms and 1 s buckets its index is now_ms without its last
    -- digits: cut from the argument instead of formatting a number (sprintf, slow in Lua 5.1).
    local digits = bucket_ms == 1000 and 3 or bucket_ms == 100 and 2 or 0
    local index = digits > 0 and string.sub(ARGV[1], 1, -1 - digits) or bucket
    if index == "" then index = "0" end
    local own = ns .. index
    local fields = hash_fields[key]
    if fields == nil then
      fields = {}
      hash_fields[key], hash_windows[key] = fields, {}
      hash_order[#hash_order + 1] = key
    end
    local at = #fields + 1
    fields[at], fields[at + 1], fields[at + 2], fields[at + 3] = ns .. "t", ns .. "o", ns .. "l", own
    local s = {key, limit, window, bucket_ms, ns, floor(window / bucket_ms), bucket, own, at}
    specs[i] = s
    local windows = hash_windows[key]
    windows[#windows + 1] = s
  else
    local s = {key, limit, tonumber(ARGV[a + 2]) - now}
    specs[i] = s
    quota_keys[#quota_keys + 1], quota_specs[#quota_keys + 1] = key, s
  end
  a = a + 4
end

-- Read: one HMGET per window, one MGET for every quota.
for h = 1, #hash_order do
  local key = hash_order[h]
  local got = call("HMGET", key, unpack(hash_fields[key]))
  local windows = hash_windows[key]
  for w = 1, #windows do
    local s = windows[w]
    local at = s[9]
    local total, oldest, newest = tonumber(got[at]) or 0, tonumber(got[at + 1]), tonumber(got[at + 2])
    local ns, oldest_live = s[5], s[7] - s[6] + 1
    if oldest ~= nil and oldest < oldest_live then
      -- Buckets left the window: drop them, and find the oldest one still in it.
      s[14] = true
      if newest == nil or newest < oldest_live then
        -- All of them (at most a window's worth: o and l are never further apart).
        local gone = {}
        for idx = oldest, math.max(oldest, newest or oldest) do gone[#gone + 1] = ns .. idx end
        call("HDEL", key, unpack(gone))
        total, oldest = 0, nil
      else
        local span = {}
        for idx = oldest, newest do span[#span + 1] = ns .. idx end
        local counts = call("HMGET", key, unpack(span))
        local gone, next_oldest = {}, nil
        for j = 1, #span do
          local c = tonumber(counts[j])
          if oldest + j - 1 < oldest_live then
            gone[#gone + 1] = span[j]
            if c then total = total - c end
          elseif c and next_oldest == nil then
            next_oldest = oldest + j - 1
          end
        end
        call("HDEL", key, unpack(gone))
        oldest = next_oldest
      end
    end
    s[10], s[11], s[12], s[13] = total, tonumber(got[at + 3]) or 0, oldest, newest
  end
end
if #quota_keys > 0 then
  local got = call("MGET", unpack(quota_keys))
  for j = 1, #quota_keys do quota_specs[j][10] = tonumber(got[j]) or 0 end
end

-- Decide: the first limit that refuses, else the tightest.
local best_idx, best_remaining, best_reset, best_limit = 0, -1, 0, 0
local refused = 0
for i = 1, n do
  local s = specs[i]
  local limit, count = s[2], s[10]
  local remaining = limit - count - 1
  local reset_ms
  if s[4] == nil then
    reset_ms = s[3]
  else
    local oldest, nb, bucket_ms = s[12], s[6], s[4]
    reset_ms = s[3]
    if oldest ~= nil then reset_ms = (oldest + nb) * bucket_ms - now end
    if remaining < 0 and refused == 0 and oldest ~= nil then
      -- Time until enough old buckets leave the window for one more request to fit.
      local need, freed, span = count + 1 - limit, 0, {}
      for idx = oldest, s[7] do span[#span + 1] = s[5] .. idx end
      local counts = call("HMGET", s[1], unpack(span))
      for j = 1, #span do
        freed = freed + (tonumber(counts[j]) or 0)
        if freed >= need then
          reset_ms = (oldest + j - 1 + nb) * bucket_ms - now
          break
        end
      end
    end
  end
  if remaining < 0 then
    if refused == 0 then
      refused = i
      best_idx, best_remaining, best_reset, best_limit = i, 0, reset_ms, limit
    end
  elseif refused == 0 and (best_remaining < 0 or remaining < best_remaining) then
    best_idx, best_remaining, best_reset, best_limit = i, remaining, reset_ms, limit
  end
end

-- Count: one HSET per window (the script owns the values it read), INCR per quota.
if refused == 0 then
  for h = 1, #hash_order do
    local key = hash_order[h]
    local set, longest, fresh = {}, 0, false
    local windows = hash_windows[key]
    for w = 1, #windows do
      local s = windows[w]
      local ns, bucket, own = s[5], s[7], s[11]
      set[#set + 1] = ns .. "t"
      set[#set + 1] = s[10] + 1
      set[#set + 1] = s[8]
      set[#set + 1] = own + 1
      if s[13] ~= bucket then
        set[#set + 1] = ns .. "l"
        set[#set + 1] = bucket
      end
      if s[12] == nil or s[14] then
        set[#set + 1] = ns .. "o"
        set[#set + 1] = s[12] or bucket
      end
      if own == 0 then fresh = true end
      if s[3] > longest then longest = s[3] end
    end
    call("HSET", key, unpack(set))
    -- A new bucket: the hash must outlive it by a window. Between new buckets nothing changes.
    if fresh then call("PEXPIRE", key, longest + 1000) end
  end
  for j = 1, #quota_keys do
    if call("INCR", quota_keys[j]) == 1 then call("PEXPIRE", quota_keys[j], quota_specs[j][3] + 60000) end
  end
else
  -- Refused: nothing counted, but buckets dropped above must not leave a stale t or o behind.
  for _, key in ipairs(hash_order) do
    for _, s in ipairs(hash_windows[key]) do
      if s[14] and s[12] == nil then
        call("HDEL", key, s[5] .. "t", s[5] .. "o", s[5] .. "l")
      elseif s[14] then
        call("HSET", key, s[5] .. "t", s[10], s[5] .. "o", s[12])
      end
    end
  end
end

local usage = KEYS[n + 1]
local prefix, last_field, now_s = ARGV[a], ARGV[a + 1], ARGV[a + 2]
a = a + 3
if prefix ~= "" then
  call("HINCRBY", usage, prefix .. "|req", 1)
  if refused ~= 0 then call("HINCRBY", usage, prefix .. "|429", 1) end
end
if last_field ~= "" then call("HSET", usage, last_field, now_s) end
while a < #ARGV do
  call("HINCRBY", usage, ARGV[a], ARGV[a + 1])
  a = a + 2
end

return {refused == 0 and 1 or 0, best_idx, best_remaining, best_reset, best_limit}
