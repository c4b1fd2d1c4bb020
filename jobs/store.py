"""Job records, progress and owner indices in the durable Redis (key layout: jobs.keys).

The chunk data itself (inputs, ids, results) is the ChunkStore's (jobs.chunks); JobStore only
decides, atomically against the record's status, whether a finished chunk still counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.typing import EncodableT

from jobs.chunks import ChunkResult, ChunkStore, RedisChunkStore, Rows
from jobs.keys import all_jobs_key, job_key, owner_key
from jobs.record import ACTIVE, CANCELLED, QUEUED, SUCCEEDED, TRANSITIONS, JobRecord, encoded

_EVERY_STATUS = frozenset(TRANSITIONS) | {QUEUED}

#: Set fields of a record only if its status is one of the given ones, checked and set in one
#: step (a plain HSET would also bring an expired record back as a fragment without a TTL).
#: KEYS: the record. ARGV: n, n statuses as stored, then field, value pairs. 1 if set, else 0.
_CHANGE_IF_STATUS = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if status == ARGV[i] then
    redis.call('HSET', KEYS[1], unpack(ARGV, n + 2))
    return 1
  end
end
return 0
"""

#: Count chunk n as done only while the job is active, so that progress never moves after a
#: cancel. A chunk already done still counts (a redelivery) unless the job's data was deleted.
#: KEYS: the record, the done set. ARGV: n, the set's TTL, the encoded null, the active states.
#: The number of chunks done, or -1 if chunk n does not count.
_COMMIT_CHUNK = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
local deleted = redis.call('HGET', KEYS[1], 'deleted')
if deleted and deleted ~= ARGV[3] then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  local active = false
  for i = 4, #ARGV do
    if status == ARGV[i] then active = true end
  end
  if not active then return -1 end
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return redis.call('SCARD', KEYS[2])
"""


class JobStore:
    """All reads and writes of job records and progress; synchronous (the worker, and the
    gateway's threads). `chunks` holds the chunk data (RedisChunkStore on `redis` by default)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        ttl_seconds: int,
        chunk_size: int,
        chunks: ChunkStore | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.chunk_size = chunk_size
        self.chunks: ChunkStore = chunks or RedisChunkStore(redis, prefix, ttl_seconds)
        self._change_if_status = redis.register_script(_CHANGE_IF_STATUS)
        self._commit_chunk = redis.register_script(_COMMIT_CHUNK)
        self._active = [encoded(status) for status in sorted(ACTIVE)]

    def key(self, job_id: str, part: str = "") -> str:
        """The job's record key, or with `part` one of its progress keys (`done`, ...)."""
        return job_key(self.prefix, job_id, part)

    # -- records ---------------------------------------------------------------------------

    def create(self, record: JobRecord) -> None:
        """Store a new record (expiring with the job) and index it by owner and creation."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key(record.id), mapping=record.to_hash())  # type: ignore[arg-type]
        pipe.expire(self.key(record.id), self.ttl)
        pipe.zadd(all_jobs_key(self.prefix), {record.id: record.created})
        pipe.zadd(owner_key(self.prefix, record.owner), {record.id: record.created})
        pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None if there is none (never was, or expired)."""
        raw = self.redis.hgetall(self.key(job_id))
        return JobRecord.from_hash(raw) if raw else None  # type: ignore[arg-type]

    def list_ids(self, owner: str | None, limit: int = 100) -> list[str]:
        """The newest `limit` job ids of `owner` (None: of every owner)."""
        key = owner_key(self.prefix, owner) if owner is not None else all_jobs_key(self.prefix)
        return [i.decode() for i in self.redis.zrevrange(key, 0, limit - 1)]  # type: ignore[union-attr]

    def owner_usage(self, owner: str) -> tuple[int, int]:
        """(jobs queued or running, rows stored) over the owner's unexpired jobs."""
        index = owner_key(self.prefix, owner)
        ids = [i.decode() for i in self.redis.zrange(index, 0, -1)]  # type: ignore[union-attr]
        active = stored = 0
        expired = []
        for job_id in ids:
            record = self.get(job_id)
            if record is None:
                expired.append(job_id)
                continue
            if record.status in ACTIVE:
                active += 1
            if record.holds_data:
                stored += record.rows
        if expired:
            self.redis.zrem(index, *expired)
            self.redis.zrem(all_jobs_key(self.prefix), *expired)
        return active, stored

    # -- state changes ---------------------------------------------------------------------

    def update(self, job_id: str, *, status: str, **fields: Any) -> bool:
        """Move the job to `status` (setting `fields` too) if TRANSITIONS allows it from the
        status it has now, checked and set atomically; False if not (or if it expired)."""
        return self._change(job_id, TRANSITIONS[status], {"status": status, **fields})

    def _change(self, job_id: str, allowed: Iterable[str], fields: dict[str, Any]) -> bool:
        states = [encoded(s) for s in sorted(allowed)]
        pairs = [part for name, value in fields.items() for part in (name, encoded(value))]
        args: list[EncodableT] = [len(states), *states, *pairs]
        return int(self._change_if_status(keys=[self.key(job_id)], args=args)) == 1

    def cancel(self, record: JobRecord) -> JobRecord:
        """Cancel an active job and delete its inputs and results; the record stays.

        A job that finished first keeps its status (succeeded or failed) and loses its data all
        the same, so that it frees the owner's stored rows; its results are gone.
        """
        now = time.time()
        cancelled = self.update(record.id, status=CANCELLED, finished=now, deleted=now)
        if not cancelled and record.deleted is None:
            self._change(record.id, _EVERY_STATUS, {"deleted": now})
        # After the status: from then on no chunk result is written or counted (finish_chunk).
        self.chunks.delete(record.id, record.chunks)
        return self.get(record.id) or record

    # -- progress --------------------------------------------------------------------------

    def chunks_done(self, job_id: str) -> int:
        """How many chunks were counted done (frozen once the job stops)."""
        return int(self.redis.scard(self.key(job_id, "done")))

    def rows_done(self, record: JobRecord) -> int:
        """Rows of the chunks done: the job's progress as `GET /v1/jobs/{id}` shows it."""
        if record.status == SUCCEEDED:
            return record.rows
        done = self.chunks_done(record.id)
        last = record.rows - (record.chunks - 1) * self.chunk_size
        # Every chunk holds chunk_size rows but the last; count it exactly when it is done.
        last_done = bool(self.redis.sismember(self.key(record.id, "done"), str(record.chunks - 1)))
        return (done - last_done) * self.chunk_size + (last if last_done else 0)

    def count_delivery(self, job_id: str, delivery: str) -> int:
        """Count one more delivery of `delivery` (chunk:attempt); how many there were."""
        key = self.key(job_id, "deliveries")
        pipe = self.redis.pipeline()
        pipe.hincrby(key, delivery, 1)
        pipe.expire(key, self.ttl)
        return int(pipe.execute()[0])

    def is_done(self, job_id: str, n: int) -> bool:
        """Whether chunk n was counted done (a redelivery then has nothing to do)."""
        return bool(self.redis.sismember(self.key(job_id, "done"), str(n)))

    def chunk_input(self, job_id: str, n: int) -> Rows | None:
        """Chunk n's rows for the worker; None once they are gone (cancelled, expired)."""
        return self.chunks.read_input(job_id, n)

    def finish_chunk(self, job_id: str, n: int, result: ChunkResult) -> int | None:
        """Store chunk n's result once and count it done; how many chunks are done, or None if
        the job stopped (cancelled, failed, deleted, expired) and the chunk no longer counts."""
        stored = self.chunks.write_result(job_id, n, result)
        keys = [self.key(job_id), self.key(job_id, "done")]
        args: list[EncodableT] = [n, self.ttl, encoded(None), *self._active]
        done = int(self._commit_chunk(keys=keys, args=args))
        if done < 0:
            if stored:
                # The job stopped after this result was written: take it back. A store that
                # cannot refuse the write itself may have written it after the cancel deleted
                # the chunks, and only this removes it.
                self.chunks.delete_result(job_id, n)
            return None
        return done
