"""Batch jobs in the durable Redis: the record, its states, chunk storage and results.

Keys (all under the key prefix P, all expiring with the job):

    P job:{id}              hash: the JobRecord
    P job:{id}:in:{n}       chunk n's rows (orjson; never pickle)
    P job:{id}:ids:{n}      chunk n's pass-through ids
    P job:{id}:out:{n}      chunk n's predictions and probabilities, written once (SET NX)
    P job:{id}:done         set of finished chunk numbers (SADD: a redelivery changes nothing)
    P job:{id}:deliveries   hash chunk -> deliveries, to fail a chunk that keeps crashing
    P jobs                  sorted set of every job id by creation time (admin listing)
    P owner:{owner}:jobs    sorted set of the owner's job ids (listing and per-owner caps)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
from redis import Redis

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
ACTIVE = frozenset({QUEUED, RUNNING})
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass(frozen=True)
class JobRecord:
    """One batch job: who owns it, which pinned model version, how far it got."""

    id: str
    owner: str
    model: str
    version: int
    rows: int
    chunks: int
    status: str = QUEUED
    id_columns: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    def to_hash(self) -> dict[str, bytes]:
        return {k: orjson.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> JobRecord:
        data = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def public(self, rows_done: int) -> dict[str, Any]:
        """What `GET /v1/jobs/{id}` answers."""
        body: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "rows_done": rows_done,
            "progress": round(rows_done / self.rows, 4) if self.rows else 1.0,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "id_columns": self.id_columns,
        }
        if self.error_code:
            body["error"] = {"code": self.error_code, "message": self.error_message}
        return body


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    """All reads and writes of job data; synchronous (the worker, and the gateway's threads)."""

    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int, chunk_size: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.chunk_size = chunk_size

    # -- keys ------------------------------------------------------------------------------

    def key(self, job_id: str, part: str = "") -> str:
        return f"{self.prefix}job:{job_id}{':' + part if part else ''}"

    def owner_key(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}:jobs"

    @property
    def all_key(self) -> str:
        return f"{self.prefix}jobs"

    # -- writing a new job -----------------------------------------------------------------

    def put_chunk(
        self, job_id: str, n: int, rows: list[list[Any]], ids: list[list[Any]] | None
    ) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.key(job_id, f"in:{n}"), orjson.dumps(rows), ex=self.ttl)
        if ids is not None:
            pipe.set(self.key(job_id, f"ids:{n}"), orjson.dumps(ids), ex=self.ttl)
        pipe.execute()

    def create(self, record: JobRecord) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self.key(record.id), mapping=record.to_hash())  # type: ignore[arg-type]
        pipe.expire(self.key(record.id), self.ttl)
        pipe.zadd(self.all_key, {record.id: record.created})
        pipe.zadd(self.owner_key(record.owner), {record.id: record.created})
        pipe.execute()

    def discard_data(self, job_id: str, chunks: int) -> None:
        """Delete a job's inputs, ids and results (cancel, or a refused upload)."""
        keys = [
            self.key(job_id, f"{part}:{n}") for n in range(chunks) for part in ("in", "ids", "out")
        ]
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(self.key(job_id))
        return JobRecord.from_hash(raw) if raw else None  # type: ignore[arg-type]

    def chunks_done(self, job_id: str) -> int:
        return int(self.redis.scard(self.key(job_id, "done")))

    def rows_done(self, record: JobRecord) -> int:
        if record.status == SUCCEEDED:
            return record.rows
        done = self.chunks_done(record.id)
        last = record.rows - (record.chunks - 1) * self.chunk_size
        # Every chunk holds chunk_size rows but the last; count it exactly when it is done.
        last_done = bool(self.redis.sismember(self.key(record.id, "done"), str(record.chunks - 1)))
        return (done - last_done) * self.chunk_size + (last if last_done else 0)

    def list_ids(self, owner: str | None, limit: int = 100) -> list[str]:
        key = self.owner_key(owner) if owner is not None else self.all_key
        return [i.decode() for i in self.redis.zrevrange(key, 0, limit - 1)]  # type: ignore[union-attr]

    def owner_usage(self, owner: str) -> tuple[int, int]:
        """(jobs queued or running, rows stored) over the owner's unexpired jobs."""
        ids = [i.decode() for i in self.redis.zrange(self.owner_key(owner), 0, -1)]  # type: ignore[union-attr]
        active = stored = 0
        expired = []
        for job_id in ids:
            record = self.get(job_id)
            if record is None:
                expired.append(job_id)
                continue
            if record.status in ACTIVE:
                active += 1
            if record.status != CANCELLED:
                stored += record.rows
        if expired:
            self.redis.zrem(self.owner_key(owner), *expired)
            self.redis.zrem(self.all_key, *expired)
        return active, stored

    def chunk_input(self, job_id: str, n: int) -> list[list[Any]] | None:
        raw = self.redis.get(self.key(job_id, f"in:{n}"))
        return None if raw is None else orjson.loads(raw)

    def iter_results(self, record: JobRecord) -> Iterator[tuple[list[Any] | None, dict[str, Any]]]:
        """(ids, {"predictions", "probabilities"}) per chunk, in input order."""
        for n in range(record.chunks):
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self.key(record.id, f"out:{n}"))
            pipe.get(self.key(record.id, f"ids:{n}"))
            out, ids = pipe.execute()
            if out is None:
                raise LookupError(f"chunk {n} of job {record.id} has no result")
            yield (orjson.loads(ids) if ids else None), orjson.loads(out)

    # -- state changes ---------------------------------------------------------------------

    def update(self, job_id: str, **changes: Any) -> None:
        self.redis.hset(self.key(job_id), mapping={k: orjson.dumps(v) for k, v in changes.items()})

    def count_delivery(self, job_id: str, delivery: str) -> int:
        key = self.key(job_id, "deliveries")
        pipe = self.redis.pipeline()
        pipe.hincrby(key, delivery, 1)
        pipe.expire(key, self.ttl)
        return int(pipe.execute()[0])

    def is_done(self, job_id: str, n: int) -> bool:
        return bool(self.redis.sismember(self.key(job_id, "done"), str(n)))

    def finish_chunk(self, job_id: str, n: int, result: dict[str, Any]) -> int:
        """Store chunk n's result once and mark it done; returns how many chunks are done."""
        pipe = self.redis.pipeline()
        pipe.set(self.key(job_id, f"out:{n}"), orjson.dumps(result), ex=self.ttl, nx=True)
        pipe.sadd(self.key(job_id, "done"), n)
        pipe.expire(self.key(job_id, "done"), self.ttl)
        pipe.scard(self.key(job_id, "done"))
        return int(pipe.execute()[-1])

    def cancel(self, record: JobRecord) -> JobRecord:
        """Stop what is not done and delete inputs and results; the record stays, cancelled."""
        cancelled = record
        if record.status != CANCELLED:
            cancelled = replace(record, status=CANCELLED, finished=record.finished or time.time())
            self.update(record.id, status=CANCELLED, finished=cancelled.finished)
        self.discard_data(record.id, record.chunks)
        return cancelled
