"""Each owner's usage of the job caps in the durable Redis, kept exact in O(1) per change.

An owner's usage is the sum of its jobs' shares: a share is what one job holds of the caps
(1 running-job slot while it is queued or running, its rows, the bytes of its data in the
store). Three keys per owner (jobs.keys) hold it: the counters (the sums), the shares, and the
time each job's data expires. Every change of a share is one Lua script that moves the counters
by the same amount, run atomically with the change that causes it: a submission (`reserve`:
its slot before the upload, its rows and bytes once stored, each checked against the caps in
the same step, so that concurrent submissions never pass them), a status change (the scripts
of jobs.store, with LUA_SHARES), a chunk's input deleted once it is scored or its result
stored (`add_bytes`).

Redis runs no code when a key expires, so expiry is not an event: each share carries the time
its job's data expires (scored in a sorted set), and the scripts that read the counters first
drop the shares that are due, at most PRUNE_BATCH per call. Each job is dropped once, so a
submission costs O(log n) in the owner's stored jobs, amortised.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.typing import EncodableT

from jobs.errors import JobLimitExceeded
from jobs.keys import owner_expiry_key, owner_shares_key, owner_usage_key

#: Shares dropped per script call at most, so that no call blocks Redis for long (a caller
#: that needs every due share gone calls again).
PRUNE_BATCH = 100

#: The share functions, prepended to every script that changes shares (here and in
#: jobs.store). A share is stored as "active rows bytes"; `usage` is the counters hash,
#: `shares` the hash of shares, `expiry` the sorted set of when each job's data expires (ms).
LUA_SHARES = """
local function share_of(shares, job)
  local raw = redis.call('HGET', shares, job)
  if not raw then return nil end
  local a, r, b = string.match(raw, '^(%d+) (%d+) (%d+)$')
  return {tonumber(a), tonumber(r), tonumber(b)}
end

local function set_share(usage, shares, job, old, new)
  local names = {'active', 'rows', 'bytes'}
  for i = 1, 3 do
    if new[i] < 0 then new[i] = 0 end
    if new[i] ~= old[i] then redis.call('HINCRBY', usage, names[i], new[i] - old[i]) end
  end
  redis.call('HSET', shares, job, string.format('%d %d %d', new[1], new[2], new[3]))
end

local function drop_share(usage, shares, expiry, job)
  local old = share_of(shares, job)
  if old then set_share(usage, shares, job, old, {0, 0, 0}) end
  redis.call('HDEL', shares, job)
  redis.call('ZREM', expiry, job)
end

-- Drop up to `limit` shares whose data expired; true if there may be more.
local function prune(usage, shares, expiry, limit)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', '(' .. string.format('%d', now),
    'LIMIT', 0, limit)
  for _, job in ipairs(due) do drop_share(usage, shares, expiry, job) end
  return #due >= limit
end

local function counters(usage)
  local raw = redis.call('HMGET', usage, 'active', 'rows', 'bytes')
  return {tonumber(raw[1]) or 0, tonumber(raw[2]) or 0, tonumber(raw[3]) or 0}
end
"""

#: Add to a job's share (taking a running-job slot, rows, bytes) only if the owner's usage stays
#: within the caps, after dropping due shares; the share then expires no earlier than given.
#: With `check` only say whether it would.
#: KEYS: usage, shares, expiry. ARGV: job, slot (0/1), rows, bytes, expires (ms), the caps
#: (slots, rows, bytes), the batch, the keys' TTL (ms), check (0/1).
#: {refused (0: no; 1, 2, 3: slots, rows, bytes), more due, counters x3, the share x3}.
_RESERVE = (
    LUA_SHARES
    + """
local more = prune(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[9]))
local used = counters(KEYS[1])
local old = share_of(KEYS[2], ARGV[1]) or {0, 0, 0}
local add = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
if old[1] == 1 then add[1] = 0 end
local refused = 0
for i = 1, 3 do
  if refused == 0 and add[i] > 0 and used[i] + add[i] > tonumber(ARGV[5 + i]) then
    refused = i
  end
end
if refused == 0 and ARGV[11] == '0' then
  set_share(KEYS[1], KEYS[2], ARGV[1], old, {old[1] + add[1], old[2] + add[2], old[3] + add[3]})
  redis.call('ZADD', KEYS[3], 'GT', ARGV[5], ARGV[1])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[10]) end
end
return {refused, more and 1 or 0, used[1], used[2], used[3], old[1], old[2], old[3]}
"""
)

#: Drop due shares; the counters. KEYS: usage, shares, expiry. ARGV: the batch.
#: {more due, counters x3}.
_READ = (
    LUA_SHARES
    + """
local more = prune(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
local used = counters(KEYS[1])
return {more and 1 or 0, used[1], used[2], used[3]}
"""
)

#: Move a job's share of bytes by ARGV[2] (a chunk's input deleted, a result stored); nothing
#: if it has no share (dropped: deleted or expired). KEYS: usage, shares. ARGV: job, delta.
_ADD_BYTES = (
    LUA_SHARES
    + """
local old = share_of(KEYS[2], ARGV[1])
if not old then return 0 end
set_share(KEYS[1], KEYS[2], ARGV[1], old, {old[1], old[2], old[3] + tonumber(ARGV[2])})
return 1
"""
)

#: Drop a job's share (a refused or failed submission). KEYS: usage, shares, expiry. ARGV: job.
_RELEASE = (
    LUA_SHARES
    + """
drop_share(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1
"""
)


@dataclass(frozen=True)
class Usage:
    """What an owner holds (or one job's share): running-job slots, rows, bytes."""

    active: int
    rows: int
    bytes: int


#: What the caps are named in a refusal, by the index the reserve script answers.
_CAP_NAMES = {1: "queued or running jobs", 2: "stored rows", 3: "stored bytes"}


class OwnerUsage:
    """The per-owner counters and shares. `keep_seconds` is how long an owner's keys outlive
    its last submission: longer than any of its shares can last (they then hold nothing)."""

    def __init__(self, redis: Redis, prefix: str, keep_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keep_ms = keep_seconds * 1000
        self._reserve = redis.register_script(_RESERVE)
        self._read = redis.register_script(_READ)
        self._add_bytes = redis.register_script(_ADD_BYTES)
        self._release = redis.register_script(_RELEASE)

    def keys(self, owner: str) -> list[str]:
        """[counters, shares, expiry]: the KEYS of every script that changes a share."""
        return [
            owner_usage_key(self.prefix, owner),
            owner_shares_key(self.prefix, owner),
            owner_expiry_key(self.prefix, owner),
        ]

    def reserve(
        self,
        owner: str,
        job_id: str,
        caps: Usage,
        expires_at: float,
        *,
        slot: bool = False,
        rows: int = 0,
        size: int = 0,
        check: bool = False,
    ) -> None:
        """Add to the job's share (a running-job slot, rows, bytes), checked against `caps`
        and added in one step; JobLimitExceeded, naming the cap, if that would pass one. With
        `check`, only look: JobLimitExceeded if adding would pass a cap now."""
        args: list[EncodableT] = [job_id, int(slot), rows, size, int(expires_at * 1000)]
        args += [caps.active, caps.rows, caps.bytes, PRUNE_BATCH, self.keep_ms, int(check)]
        while True:
            answer = [int(x) for x in self._reserve(keys=self.keys(owner), args=args)]
            refused, more = answer[0], answer[1]
            if refused == 0:
                return
            if not more:  # else due shares are left that may make room: drop them, try again
                break
        used, share = answer[2:5], answer[5:8]
        if refused == 1:
            raise JobLimitExceeded(
                f"{used[0]} jobs are queued or running for this owner; the limit is {caps.active}"
            )
        limit = (caps.active, caps.rows, caps.bytes)[refused - 1]
        name = _CAP_NAMES[refused]
        adding = share[refused - 1] + (rows, size)[refused - 2]
        raise JobLimitExceeded(
            f"this owner has {used[refused - 1] - share[refused - 1]} {name} in unexpired jobs; "
            f"with this job's {adding} it would pass the limit of {limit} {name}"
        )

    def release(self, owner: str, job_id: str) -> None:
        """Drop the job's share: a submission that was refused or failed half-way."""
        self._release(keys=self.keys(owner), args=[job_id])

    def add_bytes(self, owner: str, job_id: str, delta: int) -> None:
        """Move the job's share of bytes by `delta`; nothing if it holds no share any more."""
        if delta:
            self._add_bytes(keys=self.keys(owner)[:2], args=[job_id, delta])

    def set_expiry(self, owner: str, job_id: str, until: float) -> None:
        """When the job's data now expires (its results' retention), if it still has a share."""
        self.redis.zadd(self.keys(owner)[2], {job_id: int(until * 1000)}, xx=True)

    def read(self, owner: str) -> Usage:
        """The owner's usage over its unexpired jobs (dropping the due shares first)."""
        while True:
            more, *used = (int(x) for x in self._read(keys=self.keys(owner), args=[PRUNE_BATCH]))
            if not more:
                return Usage(*used)

    def share(self, owner: str, job_id: str) -> Usage | None:
        """What one job holds now, as stored (None without a share)."""
        raw = self.redis.hget(self.keys(owner)[1], job_id)
        return None if raw is None else Usage(*(int(x) for x in raw.split()))
