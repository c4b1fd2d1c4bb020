"""The Lua scripts that change the owners' shares of the job caps (jobs.owner_usage, jobs.store).

Each is run atomically by Redis, with the change that causes it. LUA_SHARES holds the share
functions every one of them starts with. A share is stored as "active rows bytes"; the owner
keys every script takes, in this order, are `usage` (the counters hash), `shares` (the hash of
shares), `expiry` (the sorted set of when each job's data expires, ms) and `slots` (the set of
the jobs holding a running-job slot, which lets a refusal check them: `heal`).
"""

from __future__ import annotations

LUA_SHARES = """
local function share_of(shares, job)
  local raw = redis.call('HGET', shares, job)
  if not raw then return nil end
  local a, r, b = string.match(raw, '^(%d+) (%d+) (%d+)$')
  return {tonumber(a), tonumber(r), tonumber(b)}
end

local function set_share(usage, shares, slots, job, old, new)
  local names = {'active', 'rows', 'bytes'}
  for i = 1, 3 do
    if new[i] < 0 then new[i] = 0 end
    if new[i] ~= old[i] then redis.call('HINCRBY', usage, names[i], new[i] - old[i]) end
  end
  if new[1] ~= old[1] then
    if new[1] > 0 then redis.call('SADD', slots, job) else redis.call('SREM', slots, job) end
  end
  redis.call('HSET', shares, job, string.format('%d %d %d', new[1], new[2], new[3]))
end

local function drop_share(usage, shares, expiry, slots, job)
  local old = share_of(shares, job)
  if old then set_share(usage, shares, slots, job, old, {0, 0, 0}) end
  redis.call('HDEL', shares, job)
  redis.call('ZREM', expiry, job)
  redis.call('SREM', slots, job)
end

-- Drop up to `limit` shares whose data expired; true if there may be more.
local function prune(usage, shares, expiry, slots, limit)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', '(' .. string.format('%d', now),
    'LIMIT', 0, limit)
  for _, job in ipairs(due) do drop_share(usage, shares, expiry, slots, job) end
  return #due >= limit
end

local function counters(usage)
  local raw = redis.call('HMGET', usage, 'active', 'rows', 'bytes')
  return {tonumber(raw[1]) or 0, tonumber(raw[2]) or 0, tonumber(raw[3]) or 0}
end
"""

#: Free the slots of up to `limit` of the owner's slot holders whose record says they stopped,
#: unseen by any script of ours (an older worker finished or failed it, an older gateway
#: cancelled it; then its share was never told). One whose data was deleted (`deleted` set)
#: loses its whole share. A holder without a record keeps its slot: a submission not stored
#: yet, or one whose data expired, which prune drops. `records` is the record keys' prefix,
#: `active` a set of the active statuses as stored. How many were freed.
_LUA_HEAL = """
local function heal(usage, shares, expiry, slots, records, limit, active)
  local freed = 0
  if limit < 1 then return 0 end
  for _, job in ipairs(redis.call('SRANDMEMBER', slots, limit)) do
    local status = redis.call('HGET', records .. job, 'status')
    if status and not active[status] then
      local old = share_of(shares, job)
      if old and old[1] > 0 then
        local deleted = redis.call('HGET', records .. job, 'deleted')
        if deleted and deleted ~= 'null' then
          drop_share(usage, shares, expiry, slots, job)
        else
          set_share(usage, shares, slots, job, old, {0, old[2], old[3]})
        end
        freed = freed + 1
      else
        redis.call('SREM', slots, job)
      end
    end
  end
  return freed
end
"""

#: Add to a job's share (taking a running-job slot, rows, bytes) only if the owner's usage stays
#: within the caps, after dropping due shares (and, refused for a slot, healing stale slots);
#: the share then expires no earlier than given. With `check` only say whether it would.
#: KEYS: usage, shares, expiry, slots. ARGV: job, slot (0/1), rows, bytes, expires (ms), the
#: caps (slots, rows, bytes), the batch, the keys' TTL (ms), check (0/1), the record keys'
#: prefix, then the active statuses as stored.
#: {refused (0: no; 1, 2, 3: slots, rows, bytes), more due, counters x3, the share x3}.
RESERVE = (
    LUA_SHARES
    + _LUA_HEAL
    + """
local more = prune(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[9]))
local function refusal(used, old)
  local add = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
  if old[1] == 1 then add[1] = 0 end  -- a slot is taken once, however often it is asked for
  for i = 1, 3 do
    if add[i] > 0 and used[i] + add[i] > tonumber(ARGV[5 + i]) then return i, add end
  end
  return 0, add
end
local used = counters(KEYS[1])
local old = share_of(KEYS[2], ARGV[1]) or {0, 0, 0}
local refused, add = refusal(used, old)
if refused == 1 then
  local active = {}
  for i = 13, #ARGV do active[ARGV[i]] = true end
  if heal(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[12], tonumber(ARGV[6]), active) > 0 then
    used = counters(KEYS[1])
    old = share_of(KEYS[2], ARGV[1]) or {0, 0, 0}
    refused, add = refusal(used, old)
  end
end
if refused == 0 and ARGV[11] == '0' then
  local new = {old[1] + add[1], old[2] + add[2], old[3] + add[3]}
  set_share(KEYS[1], KEYS[2], KEYS[4], ARGV[1], old, new)
  redis.call('ZADD', KEYS[3], 'GT', ARGV[5], ARGV[1])
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[10]) end
end
return {refused, more and 1 or 0, used[1], used[2], used[3], old[1], old[2], old[3]}
"""
)

#: Drop due shares; the counters. KEYS: usage, shares, expiry, slots. ARGV: the batch.
#: {more due, counters x3}.
READ = (
    LUA_SHARES
    + """
local more = prune(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]))
local used = counters(KEYS[1])
return {more and 1 or 0, used[1], used[2], used[3]}
"""
)

#: Move a job's share of bytes by ARGV[2] (a chunk's input deleted by a store outside this
#: Redis); nothing if it has no share (dropped: deleted or expired).
#: KEYS: usage, shares, expiry, slots. ARGV: job, delta.
ADD_BYTES = (
    LUA_SHARES
    + """
local old = share_of(KEYS[2], ARGV[1])
if not old then return 0 end
set_share(KEYS[1], KEYS[2], KEYS[4], ARGV[1], old, {old[1], old[2], old[3] + tonumber(ARGV[2])})
return 1
"""
)

#: Delete one of a job's keys (a scored chunk's input) and take its bytes from the job's share
#: in the same step, so that no crash can leave them counted after it went.
#: KEYS: the key, usage, shares, expiry, slots. ARGV: job. The bytes deleted.
DELETE_COUNTED = (
    LUA_SHARES
    + """
local size = redis.call('STRLEN', KEYS[1])
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
local old = share_of(KEYS[3], ARGV[1])
if old then set_share(KEYS[2], KEYS[3], KEYS[5], ARGV[1], old, {old[1], old[2], old[3] - size}) end
return size
"""
)

#: Drop a job's share (a refused or failed submission). KEYS: usage, shares, expiry, slots.
#: ARGV: job.
RELEASE = (
    LUA_SHARES
    + """
drop_share(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
return 1
"""
)

#: Set fields of a record only if its status is one of the given ones, checked and set in one
#: step (a plain HSET would also bring an expired record back as a fragment without a TTL),
#: and change the job's share with it. Mode `keep` (succeeded): free the running-job slot, the
#: share now ends at `until` (the data keys were given that expiry just before), the record at
#: `record until`, progress keys go. Mode `drop` (failed, cancelled, deleted; refused if the
#: data was deleted already): free the whole share.
#: KEYS: the record, the owner's usage, shares, expiry and slots, the job's deliveries and
#: done keys. ARGV: job, mode ('', keep, drop), until (ms), record until (ms), n, n statuses
#: as stored, then field, value pairs. 1 if set, else 0.
MOVE = (
    LUA_SHARES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local mode = ARGV[2]
if mode == 'drop' then
  local deleted = redis.call('HGET', KEYS[1], 'deleted')
  if deleted and deleted ~= 'null' then return 0 end
end
local n = tonumber(ARGV[5])
local allowed = false
for i = 6, n + 5 do
  if status == ARGV[i] then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, n + 6))
if mode == 'keep' then
  local old = share_of(KEYS[3], ARGV[1])
  if old then
    set_share(KEYS[2], KEYS[3], KEYS[5], ARGV[1], old, {0, old[2], old[3]})
    redis.call('ZADD', KEYS[4], 'XX', ARGV[3], ARGV[1])
  end
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[6], KEYS[7])
elseif mode == 'drop' then
  drop_share(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1])
  redis.call('DEL', KEYS[6])
end
return 1
"""
)

#: Count chunk n as done only while the job is active, so that progress never moves after a
#: cancel. A chunk already done still counts (a redelivery) unless the job's data was deleted.
#: The bytes of its result, as stored (by this delivery or by one that died before it counted
#: them), join the job's share once: when the chunk joins the done set.
#: KEYS: the record, the done set, the owner's usage, shares, expiry and slots. ARGV: n, job,
#: the result's bytes, the active states. The number of chunks done, or -1 if chunk n does not
#: count.
COMMIT_CHUNK = (
    LUA_SHARES
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
local deleted = redis.call('HGET', KEYS[1], 'deleted')
if deleted and deleted ~= 'null' then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  local active = false
  for i = 4, #ARGV do
    if status == ARGV[i] then active = true end
  end
  if not active then return -1 end
  redis.call('SADD', KEYS[2], ARGV[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  local size = tonumber(ARGV[3])
  local old = share_of(KEYS[4], ARGV[2])
  if old and size > 0 then
    set_share(KEYS[3], KEYS[4], KEYS[6], ARGV[2], old, {old[1], old[2], old[3] + size})
  end
end
return redis.call('SCARD', KEYS[2])
"""
)
