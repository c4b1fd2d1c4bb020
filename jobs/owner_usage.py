"""Each owner's usage of the job caps in the durable Redis, kept exact in O(1) per change.

An owner's usage is the sum of its jobs' shares: a share is what one job holds of the caps
(1 running-job slot while it is queued or running, its rows, the bytes of its data in the
store). Four keys per owner (jobs.keys) hold it: the counters (the sums), the shares, the time
each job's data expires, and the jobs holding a slot. Every change of a share is one Lua script
(jobs.scripts) that moves the counters by the same amount, run atomically with the change that
causes it: a submission (`reserve`: its slot before the upload, its rows and bytes once stored,
each checked against the caps in the same step, so that concurrent submissions never pass
them), a status change (the scripts of jobs.store), a chunk's result counted or its input
deleted once it is scored (jobs.store, `delete_counted`).

Redis runs no code when a key expires, so expiry is not an event: each share carries the time
its job's data expires (scored in a sorted set), and the scripts that read the counters first
drop the shares that are due, at most PRUNE_BATCH per call. Each job is dropped once, so a
submission costs O(log n) in the owner's stored jobs, amortised. A submission refused for a
slot first checks the records of the slot holders (at most the cap's worth) and frees those
that stopped without a script of ours seeing it (an older worker or gateway moved them).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.typing import EncodableT

from jobs import scripts
from jobs.errors import JobLimitExceeded
from jobs.keys import (
    job_key,
    owner_expiry_key,
    owner_shares_key,
    owner_slots_key,
    owner_usage_key,
)
from jobs.record import ACTIVE, encoded

#: Shares dropped per script call at most, so that no call blocks Redis for long (a caller
#: that needs every due share gone calls again).
PRUNE_BATCH = 100


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
        self._reserve = redis.register_script(scripts.RESERVE)
        self._read = redis.register_script(scripts.READ)
        self._add_bytes = redis.register_script(scripts.ADD_BYTES)
        self._delete_counted = redis.register_script(scripts.DELETE_COUNTED)
        self._release = redis.register_script(scripts.RELEASE)
        self._active = [encoded(status) for status in sorted(ACTIVE)]

    def keys(self, owner: str) -> list[str]:
        """[counters, shares, expiry, slots]: the owner KEYS of every script that changes a
        share, in that order."""
        return [
            owner_usage_key(self.prefix, owner),
            owner_shares_key(self.prefix, owner),
            owner_expiry_key(self.prefix, owner),
            owner_slots_key(self.prefix, owner),
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
        and added in one step; JobLimitExceeded, naming the cap, if that would pass one. A slot
        is taken once however often `slot` is asked for (again if its share was dropped
        meanwhile). The share ends at `expires_at` or later (never moved earlier here). With
        `check`, only look: JobLimitExceeded if adding would pass a cap now."""
        args: list[EncodableT] = [job_id, int(slot), rows, size, int(expires_at * 1000)]
        args += [caps.active, caps.rows, caps.bytes, PRUNE_BATCH, self.keep_ms, int(check)]
        args += [job_key(self.prefix, ""), *self._active]
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
            self._add_bytes(keys=self.keys(owner), args=[job_id, delta])

    def delete_counted(self, owner: str, job_id: str, key: str) -> int:
        """Delete `key`, one of the job's in this Redis, and take its bytes from the job's
        share in the same step; the bytes deleted (0 if it was gone)."""
        return int(self._delete_counted(keys=[key, *self.keys(owner)], args=[job_id]))

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
