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

    Every write is idempotent, because a Celery task can be delivered more than once. `delete`
    removes only what the store itself wrote: a store that also accepts inputs by reference (an
    object a user uploaded to a bucket) must record those as references and never delete them.
    """

    def write_input(self, job_id: str, n: int, rows: Rows, ids: Rows | None) -> None:
        """Store chunk n's rows, and its pass-through ids when the job has any."""
        ...

    def read_input(self, job_id: str, n: int) -> Rows | None:
        """Chunk n's rows; None once they are gone (the job was cancelled or expired)."""
        ...

    def write_result(self, job_id: str, n: int, result: ChunkResult) -> bool:
        """Store chunk n's result unless one is stored: True only if this call stored it.

        Never overwrites, so a redelivered chunk changes nothing. A store that can check it
        atomically with the write also refuses (False) once the job is no longer active; one
        that cannot leaves that to JobStore.finish_chunk, which then takes the result back.
        """
        ...

    def delete_result(self, job_id: str, n: int) -> None:
        """Take back chunk n's result, written by this store for a job that stopped meanwhile."""
        ...

    def iter_results(self, job_id: str, chunks: int) -> Iterator[ResultChunk]:
        """(ids, result) of chunks 0 .. chunks-1, in order; LookupError if one is missing."""
        ...

    def delete(self, job_id: str, chunks: int) -> None:
        """Delete the inputs, ids and results this store wrote for the job's `chunks` chunks."""
        ...


#: Store chunk n's result only while the job is active, and only once, in one step: a cancel
#: that set the record's status first can never see the result appear after it.
#: KEYS: the record, the result. ARGV: the result, its TTL, then the active states as stored.
_WRITE_RESULT_WHILE_ACTIVE = """
local status = redis.call('HGET', KEYS[1], 'status')
for i = 3, #ARGV do
  if status == ARGV[i] then
    if redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX') then return 1 end
    return 0
  end
end
return -1
"""


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

    def write_input(self, job_id: str, n: int, rows: Rows, ids: Rows | None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._key(job_id, "in", n), orjson.dumps(rows), ex=self.ttl)
        if ids is not None:
            pipe.set(self._key(job_id, "ids", n), orjson.dumps(ids), ex=self.ttl)
        pipe.execute()

    def read_input(self, job_id: str, n: int) -> Rows | None:
        raw = self.redis.get(self._key(job_id, "in", n))
        return None if raw is None else orjson.loads(raw)

    def write_result(self, job_id: str, n: int, result: ChunkResult) -> bool:
        keys = [job_key(self.prefix, job_id), self._key(job_id, "out", n)]
        args: list[EncodableT] = [orjson.dumps(result), self.ttl, *self._active]
        return int(self._write_result(keys=keys, args=args)) == 1

    def delete_result(self, job_id: str, n: int) -> None:
        self.redis.delete(self._key(job_id, "out", n))

    def iter_results(self, job_id: str, chunks: int) -> Iterator[ResultChunk]:
        for n in range(chunks):
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self._key(job_id, "out", n))
            pipe.get(self._key(job_id, "ids", n))
            out, ids = pipe.execute()
            if out is None:
                raise LookupError(f"chunk {n} of job {job_id} has no result")
            yield (orjson.loads(ids) if ids else None), orjson.loads(out)

    def delete(self, job_id: str, chunks: int) -> None:
        # Every key here is this store's own: inputs by reference do not exist in Redis.
        keys = [self._key(job_id, part, n) for n in range(chunks) for part in ("in", "ids", "out")]
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])
