"""Job records, progress and owner indices in the durable Redis (key layout: jobs.keys).

The chunk data itself (inputs, ids, results) is the ChunkStore's (jobs.chunks); JobStore only
decides, atomically against the record's status, whether a finished chunk still counts. Every
status change changes the job's share of its owner's caps (jobs.owner_usage) in the same
script: leaving queued or running frees its running-job slot; failing or being cancelled
deletes its data and frees the rest of its share; succeeding keeps its rows and bytes until
its results' retention ends, when the results expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from redis import Redis
from redis.typing import EncodableT

from jobs import scripts
from jobs.chunks import ChunkResult, ChunkStore, RedisChunkStore, Rows
from jobs.keys import all_jobs_key, job_key, owner_key
from jobs.owner_usage import OwnerUsage, Usage
from jobs.record import (
    ACTIVE,
    CANCELLED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TRANSITIONS,
    JobRecord,
    encoded,
)

_EVERY_STATUS = frozenset(TRANSITIONS) | {QUEUED}

#: How long a succeeded job's record outlives its results, so that `GET /v1/jobs/{id}` still
#: answers (and its results 410, not 404) for a while after they went.
RECORD_OUTLIVES_RESULTS_SECONDS = 3600


class JobStore:
    """All reads and writes of job records and progress; synchronous (the worker, and the
    gateway's threads). `chunks` holds the chunk data (RedisChunkStore on `redis` by default);
    `usage` the owners' shares of the caps. A succeeded job's results are kept for
    `results_ttl_seconds` (the job TTL when None)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        ttl_seconds: int,
        chunk_size: int,
        chunks: ChunkStore | None = None,
        results_ttl_seconds: int | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.results_ttl = results_ttl_seconds or ttl_seconds
        self.chunk_size = chunk_size
        self.chunks: ChunkStore = chunks or RedisChunkStore(redis, prefix, ttl_seconds)
        # Every share ends within `lifetime` of its job's submission: the owner's keys, kept
        # that long after its last one (and an hour for clocks that differ), then hold nothing.
        self.usage = OwnerUsage(redis, prefix, keep_seconds=self.lifetime + 3600)
        self._move_script = redis.register_script(scripts.MOVE)
        self._commit_chunk = redis.register_script(scripts.COMMIT_CHUNK)
        self._active = [encoded(status) for status in sorted(ACTIVE)]

    @property
    def lifetime(self) -> int:
        """The longest a job's record can live, from its submission: it ran for the job TTL,
        then succeeded, and its results were kept."""
        return self.ttl + self.results_ttl + RECORD_OUTLIVES_RESULTS_SECONDS

    def key(self, job_id: str, part: str = "") -> str:
        """The job's record key, or with `part` one of its progress keys (`done`, ...)."""
        return job_key(self.prefix, job_id, part)

    # -- records ---------------------------------------------------------------------------

    def create(self, record: JobRecord) -> None:
        """Store a new record, expiring at its `expires` (the job TTL from now when None), and
        index it by owner and creation; index entries older than any record are dropped."""
        expires = record.expires if record.expires is not None else time.time() + self.ttl
        cutoff = f"({time.time() - self.lifetime}"
        owner_index = owner_key(self.prefix, record.owner)
        pipe = self.redis.pipeline()
        pipe.hset(self.key(record.id), mapping=record.to_hash())  # type: ignore[arg-type]
        pipe.pexpireat(self.key(record.id), int(expires * 1000))
        for index in (all_jobs_key(self.prefix), owner_index):
            pipe.zadd(index, {record.id: record.created})
            pipe.zremrangebyscore(index, "-inf", cutoff)
        pipe.expire(owner_index, self.lifetime)
        pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None if there is none (never was, or expired)."""
        raw = self.redis.hgetall(self.key(job_id))
        return JobRecord.from_hash(raw) if raw else None  # type: ignore[arg-type]

    def list_ids(self, owner: str | None, limit: int = 100) -> list[str]:
        """The newest `limit` job ids of `owner` (None: of every owner)."""
        key = owner_key(self.prefix, owner) if owner is not None else all_jobs_key(self.prefix)
        return [i.decode() for i in self.redis.zrevrange(key, 0, limit - 1)]  # type: ignore[union-attr]

    def owner_usage(self, owner: str) -> Usage:
        """The owner's running-job slots, stored rows and bytes over its unexpired jobs: O(1)
        (amortised: the shares of jobs whose data expired are dropped first)."""
        return self.usage.read(owner)

    # -- state changes ---------------------------------------------------------------------

    def update(self, job_id: str, *, status: str, **fields: Any) -> bool:
        """Move the job to `status` (setting `fields` too) if TRANSITIONS allows it from the
        status it has now, checked and set atomically; False if not (or if it expired).

        Succeeded: the job's ids, results and share are kept for the results' retention (its
        `expires`), the record an hour longer. Failed or cancelled: its data is deleted (a
        failed job's results are never read), marked `deleted`, and its share freed.
        """
        allowed = TRANSITIONS[status]
        if status == RUNNING:
            return self._move(job_id, allowed, {"status": status, **fields})
        job = self._job(job_id)
        if job is None:
            return False
        owner, chunks, current = job
        if status == SUCCEEDED:
            if current not in ACTIVE:
                return False  # finished already: its data keeps the retention it was given
            until = time.time() + self.results_ttl
            # The retention first, then the status: a crash in between leaves the job active
            # (the redelivered last chunk finishes it: worker.tasks), never succeeded with
            # results that expire before its `expires` says.
            self.chunks.keep_results(job_id, chunks, until)
            changes = {"status": status, **fields, "expires": until}
            return self._move(job_id, allowed, changes, owner, "keep", until)
        fields.setdefault("deleted", time.time())
        if not self._move(job_id, allowed, {"status": status, **fields}, owner, "drop"):
            return False
        self.chunks.delete(job_id, chunks)
        return True

    def _move(
        self,
        job_id: str,
        allowed: Iterable[str],
        fields: dict[str, Any],
        owner: str = "",
        mode: str = "",
        until: float = 0.0,
    ) -> bool:
        states = [encoded(s) for s in sorted(allowed)]
        pairs = [part for name, value in fields.items() for part in (name, encoded(value))]
        record_until = until + RECORD_OUTLIVES_RESULTS_SECONDS
        args: list[EncodableT] = [job_id, mode, int(until * 1000), int(record_until * 1000)]
        args += [len(states), *states, *pairs]
        keys = [self.key(job_id), *self.usage.keys(owner)]
        keys += [self.key(job_id, "deliveries"), self.key(job_id, "done")]
        return int(self._move_script(keys=keys, args=args)) == 1

    def _job(self, job_id: str) -> tuple[str, int, str | None] | None:
        """(owner, chunks, status) of the job's record; None without one."""
        owner, chunks, status = self.redis.hmget(self.key(job_id), ["owner", "chunks", "status"])
        if owner is None or chunks is None:
            return None
        return orjson.loads(owner), int(orjson.loads(chunks)), orjson.loads(status or b"null")

    def cancel(self, record: JobRecord) -> JobRecord:
        """Cancel an active job and delete its inputs and results; the record stays.

        A job that finished first keeps its status (succeeded or failed) and loses its data all
        the same, so that it frees the owner's stored rows and bytes; its results are gone.
        """
        now = time.time()
        changes = {"status": CANCELLED, "finished": now, "deleted": now}
        if not self._move(record.id, ACTIVE, changes, record.owner, "drop"):
            self._move(record.id, _EVERY_STATUS, {"deleted": now}, record.owner, "drop")
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
        """Chunk n's rows for the worker; None once they are gone (scored, cancelled, expired)."""
        return self.chunks.read_input(job_id, n)

    def finish_chunk(self, job_id: str, n: int, result: ChunkResult) -> int | None:
        """Store chunk n's result once and count it done, then delete its input; how many
        chunks are done, or None if the job stopped (cancelled, failed, deleted, expired) and
        the chunk no longer counts."""
        stored = self.chunks.write_result(job_id, n, result)
        job = self._job(job_id)
        owner = job[0] if job is not None else ""
        # Its bytes as stored, whichever delivery stored them (one that died before counting
        # them left them to this one, whose write stored nothing): counted once, as the chunk
        # counts done.
        size = stored or (self.chunks.result_size(job_id, n) if job is not None else 0)
        keys = [self.key(job_id), self.key(job_id, "done"), *self.usage.keys(owner)]
        args: list[EncodableT] = [n, job_id, size, *self._active]
        done = int(self._commit_chunk(keys=keys, args=args)) if job is not None else -1
        if done < 0:
            if stored:
                # The job stopped after this result was written: take it back. A store that
                # cannot refuse the write itself may have written it after the cancel deleted
                # the chunks, and only this removes it.
                self.chunks.delete_result(job_id, n)
            return None
        # Only after the count: a redelivery finds the chunk done and never needs its input.
        # (A crash in between leaves the input, still counted, until the job's data expires.)
        chunks = self.chunks
        if isinstance(chunks, RedisChunkStore) and chunks.redis is self.redis:
            # Deleted and uncounted in one step: no crash leaves its bytes counted after it.
            self.usage.delete_counted(owner, job_id, chunks.input_key(job_id, n))
        else:
            self.usage.add_bytes(owner, job_id, -chunks.delete_input(job_id, n))
        return done
