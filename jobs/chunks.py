"""Where a job's chunk inputs and results live: the ChunkStore seam and its Redis implementation.

The gateway writes a job's inputs (jobs.client), the worker reads one chunk's rows and writes its
result (worker.tasks via jobs.store), and the gateway streams the results back in chunk order.
Job records, progress and owner indices stay in the durable Redis (jobs.store) whatever the
ChunkStore; only the chunk data may move (object storage later).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import orjson
from redis import Redis
from redis.typing import EncodableT

from jobs.keys import job_key
from jobs.record import ACTIVE, encoded

#: One chunk's rows (or pass-through ids): a list of lists, JSON-serialisable.
Rows = list[list[Any]]
#: One chunk's result: {"predictions": [...], "probabilities": [[...], ...] | None}.
ChunkResult = dict[str, Any]
#: What results are read as, per chunk: (its ids or None, its result).
ResultChunk = tuple[list[Any] | None, ChunkResult]


class ChunkStore(Protocol):
    """A job's chunk inputs and results, by job id and chunk number (0, 1, ...).

    Every write is idempotent, because a Celery task can be delivered more than once. Every
    delete (`delete_input`, `delete_result`, `delete`) removes only what the store itself wrote
    under the job's id: a store that also accepts inputs by reference (an object a user uploaded
    to a bucket) must record those as references and never delete them. Sizes are the bytes
    stored, which the owner's stored-bytes cap counts (jobs.owner_usage).
    """

    def write_input(
        self, job_id: str, n: int, rows: Rows, ids: Rows | None, expires_at: float | None = None
    ) -> int:
        """Store chunk n's rows, and its pass-through ids when the job has any, until
        `expires_at` (Unix seconds; the store's TTL from now when None); the bytes stored."""
        ...

    def read_input(self, job_id: str, n: int) -> Rows | None:
        """Chunk n's rows; None once they are gone (the job was cancelled or expired)."""
        ...

    def delete_input(self, job_id: str, n: int) -> int:
        """Delete chunk n's rows once it is scored (its ids stay, for the results); the bytes
        this call freed (0 if they were gone already)."""
        ...

    def write_result(self, job_id: str, n: int, result: ChunkResult) -> int:
        """Store chunk n's result unless one is stored, to expire with the job: the bytes this
        call stored (0 if it stored nothing).

        Never overwrites, so a redelivered chunk changes nothing. A store that can check it
        atomically with the write also refuses (0) once the job is no longer active; one
        that cannot leaves that to JobStore.finish_chunk, which then takes the result back.
        """
        ...

    def result_size(self, job_id: str, n: int) -> int:
        """The bytes of chunk n's result as stored (0 if none is): one an earlier delivery
        stored before it died is counted by the delivery that finds it."""
        ...

    def delete_result(self, job_id: str, n: int) -> None:
        """Take back chunk n's result, written by this store for a job that stopped meanwhile."""
        ...

    def keep_results(self, job_id: str, chunks: int, until: float) -> None:
        """Keep the ids and results of the job's `chunks` chunks until `until` (Unix seconds),
        their retention from when the job succeeded, and no input left longer than that."""
        ...

    def iter_results(self, job_id: str, chunks: int) -> Iterator[ResultChunk]:
        """(ids, result) of chunks 0 .. chunks-1, in order; LookupError if one is missing."""
        ...

    def has_results(self, job_id: str, chunks: int) -> bool:
        """Whether every one of the job's `chunks` chunks has its result stored (checked
        before results are streamed, which then answer 410 rather than break off)."""
        ...

    def delete(self, job_id: str, chunks: int) -> None:
        """Delete the inputs, ids and results this store wrote for the job's `chunks` chunks."""
        ...


#: Store chunk n's result only while the job is active, and only once, in one step: a cancel
#: that set the record's status first can never see the result appear after it. The result
#: expires with the record. KEYS: the record, the result. ARGV: the result, the TTL (ms) if the
#: record has none, then the active states as stored. 1 if stored, 0 if stored already, -1 if
#: the job is not active.
_WRITE_RESULT_WHILE_ACTIVE = """
local status = redis.call('HGET', KEYS[1], 'status')
for i = 3, #ARGV do
  if status == ARGV[i] then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl <= 0 then ttl = ARGV[2] end
    if redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl, 'NX') then return 1 end
    return 0
  end
end
return -1
"""

#: Keys changed per round trip when a job's keys are deleted or their retention set.
_BATCH = 1000


class RedisChunkStore:
    """ChunkStore in the durable Redis, beside the job records (key layout: jobs.keys).

    Because the record is in the same Redis, a result is written only while its job is active,
    checked and written in one Lua script.
    """

    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._write_result = redis.register_script(_WRITE_RESULT_WHILE_ACTIVE)
        self._active = [encoded(status) for status in sorted(ACTIVE)]

    def _key(self, job_id: str, part: str, n: int) -> str:
        return job_key(self.prefix, job_id, f"{part}:{n}")

    def input_key(self, job_id: str, n: int) -> str:
        """Chunk n's input key (JobStore deletes it and its bytes' count in one script)."""
        return self._key(job_id, "in", n)

    def _own_keys(self, job_id: str, chunks: int) -> Iterator[list[str]]:
        """Every key this store writes for the job's chunks, inputs, ids and results, _BATCH
        at a time."""
        keys = [self._key(job_id, part, n) for n in range(chunks) for part in ("in", "ids", "out")]
        for start in range(0, len(keys), _BATCH):
            yield keys[start : start + _BATCH]

    def write_input(
        self, job_id: str, n: int, rows: Rows, ids: Rows | None, expires_at: float | None = None
    ) -> int:
        at = int(expires_at * 1000) if expires_at is not None else None
        ex = None if at is not None else self.ttl
        encoded_rows = orjson.dumps(rows)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._key(job_id, "in", n), encoded_rows, ex=ex, pxat=at)
        size = len(encoded_rows)
        if ids is not None:
            encoded_ids = orjson.dumps(ids)
            pipe.set(self._key(job_id, "ids", n), encoded_ids, ex=ex, pxat=at)
            size += len(encoded_ids)
        pipe.execute()
        return size

    def delete_input(self, job_id: str, n: int) -> int:
        key = self._key(job_id, "in", n)
        pipe = self.redis.pipeline(transaction=True)  # the size of exactly what DEL deleted
        pipe.strlen(key)
        pipe.delete(key)
        size, deleted = pipe.execute()
        return int(size) if deleted else 0

    def read_input(self, job_id: str, n: int) -> Rows | None:
        raw = self.redis.get(self._key(job_id, "in", n))
        return None if raw is None else orjson.loads(raw)

    def write_result(self, job_id: str, n: int, result: ChunkResult) -> int:
        keys = [job_key(self.prefix, job_id), self._key(job_id, "out", n)]
        encoded_result = orjson.dumps(result)
        args: list[EncodableT] = [encoded_result, self.ttl * 1000, *self._active]
        stored = int(self._write_result(keys=keys, args=args)) == 1
        return len(encoded_result) if stored else 0

    def result_size(self, job_id: str, n: int) -> int:
        return int(self.redis.strlen(self._key(job_id, "out", n)))

    def delete_result(self, job_id: str, n: int) -> None:
        self.redis.delete(self._key(job_id, "out", n))

    def keep_results(self, job_id: str, chunks: int, until: float) -> None:
        at = int(until * 1000)
        # An input left (its worker died between counting the chunk and deleting it) too.
        for keys in self._own_keys(job_id, chunks):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.pexpireat(key, at)
            pipe.execute()

    def iter_results(self, job_id: str, chunks: int) -> Iterator[ResultChunk]:
        for n in range(chunks):
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self._key(job_id, "out", n))
            pipe.get(self._key(job_id, "ids", n))
            out, ids = pipe.execute()
            if out is None:
                raise LookupError(f"chunk {n} of job {job_id} has no result")
            yield (orjson.loads(ids) if ids else None), orjson.loads(out)

    def has_results(self, job_id: str, chunks: int) -> bool:
        keys = [self._key(job_id, "out", n) for n in range(chunks)]
        found = sum(
            int(self.redis.exists(*keys[start : start + _BATCH]))
            for start in range(0, len(keys), _BATCH)
        )
        return found == chunks

    def delete(self, job_id: str, chunks: int) -> None:
        # Every key here is this store's own: inputs by reference do not exist in Redis.
        for keys in self._own_keys(job_id, chunks):
            self.redis.delete(*keys)
