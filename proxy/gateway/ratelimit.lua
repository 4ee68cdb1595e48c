-- Check every limit of a batch of requests in order, count each request that all its limits
-- allow, and record usage: one atomic call for all the requests one gateway sends in one round
-- trip (see ratelimit.py for the argument layout, script_args). The batch runs as if each
-- request had its own call, one after another: the same decisions, the same counts.
--
-- Why batched: Redis' Lua 5.1 pays ≈ 5 µs per EVALSHA before the script runs, and ≈ 1.5 µs per
-- redis.call beyond the command itself. Requests that share a key (a busy partner's plan
-- window, its quota, the usage hash) read and write it once per batch instead of once each.
--
-- Rate limits are sliding windows made of sub-buckets: the count is exact over the last
-- `window` to within one bucket (1/60 of a minute, ...), so a burst at a window boundary cannot
-- double the limit the way a fixed window lets it. A window is a hash (one key per window):
--   <bucket index> = count     t = total of the live buckets
--   o = oldest non-empty live bucket     l = newest bucket written
-- A key is read once per call: t, o, l and the current bucket in one HMGET. Only when the
-- window has slid past o (at most once per bucket period) are the buckets that left read,
-- deleted in one HDEL and subtracted, and o moved to the next non-empty bucket. The exact time
-- until one more request fits (Retry-After) needs the live buckets themselves: read only when
-- refusing. Quotas are calendar windows (the key carries the day or month): plain counters,
-- read with one MGET. Expiry is set when a key or bucket is created, not on every request.
-- A refused request consumes nothing. The gateway computes what is the same for the whole
-- batch (the current bucket, ms until a quota resets), so the script formats no numbers.
--
-- KEYS: usage hash, then each limit key of the batch once
-- ARGV: now_ms, now_s, n_keys, then per limit key (KEYS[1 + i]), four values:
--         "r", window_ms, bucket_ms, current bucket index    or    "q", ms until its reset, 0, 0
--       n_checks, then per check (request): usage prefix ("" = none), last-used field ("" =
--         none), n_limits, then per limit: key number (i above), limit
--       then usage delta pairs (responses of earlier requests): field, increment ...
-- Returns five integers per check: admitted (1|0), the deciding limit's position among the
-- check's limits (0 = none), remaining, ms until reset, limit.

local now = tonumber(ARGV[1])
local n_keys = tonumber(ARGV[3])
local call = redis.call
local floor = math.floor

-- Per key, positional (Lua 5.1: no hash part). Rate: 1 true, 2 window, 3 bucket ms, 4 buckets
-- per window, 5 current bucket, 6 its field, 7 total, 8 current bucket's count, 9 oldest,
-- 10 newest as read, 11 buckets were dropped, 12 counted in this call, 13 current bucket's
-- count as read, 14 oldest as read was nil. Quota: 1 false, 2 ms until reset, 7 count,
-- 12 counted in this call.
local state = {}
local quota_keys, quota_state = {}, {}
local a = 4
for i = 1, n_keys do
  local key = KEYS[i + 1]
  if ARGV[a] == "r" then
    local window, bucket_ms, own_field = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
    local own, nb = tonumber(own_field), floor(window / bucket_ms)
    local got = call("HMGET", key, "t", "o", "l", own_field)
    local total, oldest, newest = tonumber(got[1]) or 0, tonumber(got[2]), tonumber(got[3])
    local oldest_live, dropped = own - nb + 1, false
    if oldest ~= nil and oldest < oldest_live then
      -- Buckets left the window: drop them, and find the oldest one still in it.
      dropped = true
      if newest == nil or newest < oldest_live then
        -- All of them (at most a window's worth: o and l are never further apart).
        local gone = {}
        for idx = oldest, math.max(oldest, newest or oldest) do gone[#gone + 1] = idx end
        call("HDEL", key, unpack(gone))
        total, oldest = 0, nil
      else
        local span = {}
        for idx = oldest, newest do span[#span + 1] = idx end
        local counts = call("HMGET", key, unpack(span))
        local gone, next_oldest = {}, nil
        for j = 1, #span do
          local c = tonumber(counts[j])
          if span[j] < oldest_live then
            gone[#gone + 1] = span[j]
            if c then total = total - c end
          elseif c and next_oldest == nil then
            next_oldest = span[j]
          end
        end
        call("HDEL", key, unpack(gone))
        oldest = next_oldest
      end
    end
    local own_count = tonumber(got[4]) or 0
    state[i] = {true, window, bucket_ms, nb, own, own_field, total, own_count, oldest, newest, dropped, 0,
      own_count, oldest == nil}
  else
    local s = {false, tonumber(ARGV[a + 1]), 0, 0, 0, 0, 0, 0, 0, 0, false, 0}
    state[i] = s
    quota_keys[#quota_keys + 1] = key
    quota_state[#quota_keys] = s
  end
  a = a + 4
end
if #quota_keys > 0 then
  local got = call("MGET", unpack(quota_keys))
  for j = 1, #quota_keys do quota_state[j][7] = tonumber(got[j]) or 0 end
end

-- The time until enough old buckets leave a refusing window for one more request to fit.
local function exact_reset(i, s, need)
  local oldest, own = s[9], s[5]
  local span = {}
  for idx = oldest, own do span[#span + 1] = idx end
  local counts = call("HMGET", KEYS[i + 1], unpack(span))
  counts[#span] = s[8]  -- the current bucket as counted so far in this call
  local freed = 0
  for j = 1, #span do
    freed = freed + (tonumber(counts[j]) or 0)
    if freed >= need then return (oldest + j - 1 + s[4]) * s[3] - now end
  end
  return (oldest + s[4]) * s[3] - now
end

-- usage: field → count of this call; usage_fields: those fields in order; ks: the current
-- request's key numbers (one table reused: Lua 5.1 allocates every table it builds).
local out, usage, usage_fields, last_used, ks = {}, {}, {}, {}, {}
local n_checks = tonumber(ARGV[a])
a = a + 1
for _ = 1, n_checks do
  local prefix, last_field, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  -- Decide: the first limit that refuses, else the tightest.
  local best_idx, best_remaining, best_reset, best_limit, refused = 0, -1, 0, 0, 0
  for l = 1, n do
    local i, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
    ks[l] = i
    local s = state[i]
    local count = s[7]
    local remaining = limit - count - 1
    local reset_ms = s[2]
    if s[1] then
      local oldest = s[9]
      if oldest ~= nil then
        if remaining < 0 and refused == 0 then
          reset_ms = exact_reset(i, s, count + 1 - limit)
        else
          reset_ms = (oldest + s[4]) * s[3] - now
        end
      end
    end
    if remaining < 0 then
      if refused == 0 then
        refused = l
        best_idx, best_remaining, best_reset, best_limit = l, 0, reset_ms, limit
      end
    elseif refused == 0 and (best_remaining < 0 or remaining < best_remaining) then
      best_idx, best_remaining, best_reset, best_limit = l, remaining, reset_ms, limit
    end
  end
  if refused == 0 then
    for l = 1, n do
      local s = state[ks[l]]
      s[7], s[12] = s[7] + 1, s[12] + 1
      if s[1] then
        s[8] = s[8] + 1
        if s[9] == nil then s[9] = s[5] end
      end
    end
  end
  if prefix ~= "" then
    local field = prefix .. "|req"
    local v = usage[field]
    if v == nil then usage_fields[#usage_fields + 1] = field; v = 0 end
    usage[field] = v + 1
    if refused ~= 0 then
      field = prefix .. "|429"
      v = usage[field]
      if v == nil then usage_fields[#usage_fields + 1] = field; v = 0 end
      usage[field] = v + 1
    end
  end
  if last_field ~= "" then
    last_used[#last_used + 1] = last_field
    last_used[#last_used + 1] = ARGV[2]
  end
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] =
    refused == 0 and 1 or 0, best_idx, best_remaining, best_reset, best_limit
end

-- Write: one HSET per window that counted (the script owns the values it read), one INCRBY per
-- quota that counted.
for i = 1, n_keys do
  local s, key = state[i], KEYS[i + 1]
  if s[1] then
    if s[12] > 0 then
      local set = {"t", s[7], s[6], s[8]}
      if s[10] ~= s[5] then set[#set + 1] = "l"; set[#set + 1] = s[5] end
      if s[14] or s[11] then set[#set + 1] = "o"; set[#set + 1] = s[9] end
      call("HSET", key, unpack(set))
      -- A new bucket: the hash must outlive it by a window. Between new buckets nothing changes.
      if s[13] == 0 then call("PEXPIRE", key, s[2] + 1000) end
    elseif s[11] then
      -- Nothing counted, but buckets dropped above must not leave a stale t or o behind.
      if s[9] == nil then
        call("HDEL", key, "t", "o", "l")
      else
        call("HSET", key, "t", s[7], "o", s[9])
      end
    end
  elseif s[12] > 0 then
    if call("INCRBY", key, s[12]) == s[12] then call("PEXPIRE", key, s[2] + 60000) end
  end
end

-- Usage: this call's request counts and the deltas it carries, then one HSET with the last-used
-- times. One field alone is an HINCRBY; more are read and written back in two calls.
while a < #ARGV do
  local field, n = ARGV[a], tonumber(ARGV[a + 1])
  local v = usage[field]
  if v == nil then usage_fields[#usage_fields + 1] = field; v = 0 end
  usage[field] = v + n
  a = a + 2
end
local usage_key = KEYS[1]
if #usage_fields == 1 then
  call("HINCRBY", usage_key, usage_fields[1], usage[usage_fields[1]])
elseif #usage_fields > 1 then
  local got = call("HMGET", usage_key, unpack(usage_fields))
  for j = 1, #usage_fields do
    local field = usage_fields[j]
    last_used[#last_used + 1] = field
    last_used[#last_used + 1] = (tonumber(got[j]) or 0) + usage[field]
  end
end
if #last_used > 0 then call("HSET", usage_key, unpack(last_used)) end

return out
