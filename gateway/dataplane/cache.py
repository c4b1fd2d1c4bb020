"""`PredictionCache`: one cached prediction per row, in the process and in the cache Redis.

A key names the model, the version that answered (and its artifact's digest), its runtime and a
hash of the row's canonical bytes, so a new version never answers from an older one's entries.
A request of many rows costs one MGET at most (the in-process layer first); writes go out in
the background. A cache that is down or slow costs `timeout` once, then is skipped for a while:
rows are predicted instead, never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import orjson
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES
from registry.model import LoadedModel
from runtime.base import SCORES

logger = logging.getLogger(__name__)

#: Seconds the Redis layer is skipped after an error or a timeout.
BREAKER_SECONDS = 5.0
#: Background write batches in flight at once; more are dropped (the cache is best effort).
MAX_PENDING_WRITES = 64


def row_key(row: list[Any]) -> bytes:
    """A hash of a validated row's canonical bytes: ints as floats, so 5 and 5.0 share it.

    A missing value (NaN in a numeric column, None elsewhere) is written as null, which no
    number is: a row with one never shares a key with a row of numbers, and hashes alike each
    time (tests/unit/gateway/test_cache_missing.py).
    """
    canonical = [float(v) if type(v) is int else v for v in row]
    return hashlib.blake2b(orjson.dumps(canonical), digest_size=16).hexdigest().encode()


class PredictionCache:
    """Look up and store per-row predictions; every method runs on the event loop."""

    def __init__(
        self,
        redis: Redis | None,
        prefix: str,
        ttl_seconds: int,
        timeout_seconds: float,
        local_size: int,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.timeout = timeout_seconds
        self.local: TTLCache[bytes, bytes] | None = (
            TTLCache(maxsize=local_size, ttl=ttl_seconds) if local_size > 0 else None
        )
        self._skip_until = 0.0
        self._writes: set[asyncio.Task[None]] = set()

    def keys(self, model: LoadedModel, rows: list[list[Any]]) -> list[bytes]:
        # The artifact's digest too: a model deleted and registered again restarts at version 1,
        # and deployments may share a cache Redis; neither may answer from the other's entries.
        digest = (model.digest or "")[:16]
        # Entries that carry scores (a bare Booster's) have keys of their own: a gateway of the
        # version before them reads [label, probabilities] only, and would fail on three.
        space = "pcs" if model.native.mlflow_output in SCORES else "pc"
        base = (
            f"{self.prefix}{space}:{model.name}:{model.version}:{digest}:{model.runtime.name}:"
        ).encode()
        return [base + row_key(row) for row in rows]

    async def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The cached value of each key, None for a miss."""
        found: list[bytes | None] = [None] * len(keys)
        wanted = list(range(len(keys)))
        if self.local is not None:
            wanted = []
            for i, key in enumerate(keys):
                value = self.local.get(key)
                if value is None:
                    wanted.append(i)
                else:
                    found[i] = value
            if len(wanted) < len(keys):
                CACHE_HITS.labels("local").inc(len(keys) - len(wanted))
        if wanted and self._redis_usable():
            values = await self._mget([keys[i] for i in wanted])
            hits = 0
            for i, value in zip(wanted, values, strict=True):
                if value is not None:
                    found[i] = value
                    hits += 1
                    if self.local is not None:
                        self.local[keys[i]] = value
            if hits:
                CACHE_HITS.labels("redis").inc(hits)
        misses = sum(value is None for value in found)
        if misses:
            CACHE_MISSES.inc(misses)
        return found

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Store predictions: in the process now, in Redis in the background."""
        if not items:
            return
        if self.local is not None:
            for key, value in items:
                self.local[key] = value
        if self._redis_usable() and len(self._writes) < MAX_PENDING_WRITES:
            task = asyncio.create_task(self._set_many(items))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._skip_until

    async def _mget(self, keys: list[bytes]) -> list[bytes | None]:
        assert self.redis is not None
        try:
            values = await asyncio.wait_for(self.redis.mget(keys), self.timeout)
            return [value if isinstance(value, bytes) else None for value in values]
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip("read", exc)
            return [None] * len(keys)

    async def _set_many(self, items: list[tuple[bytes, bytes]]) -> None:
        assert self.redis is not None
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, value, ex=self.ttl)
                await asyncio.wait_for(pipe.execute(), self.timeout * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip("write", exc)

    def _trip(self, op: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(op).inc()
        if time.monotonic() >= self._skip_until:
            logger.warning(
                "prediction cache %s failed (%s); skipping it for %.0f s",
                op,
                type(exc).__name__,
                BREAKER_SECONDS,
            )
        self._skip_until = time.monotonic() + BREAKER_SECONDS

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()


def encode(label: Any, probabilities: list[float] | None, scores: Any = None) -> bytes:
    """A row's entry: its label, probabilities and, for a model that answers them, scores."""
    return orjson.dumps(
        [label, probabilities] if scores is None else [label, probabilities, scores]
    )


def decode(value: bytes) -> tuple[Any, list[float] | None, Any]:
    """(label, probabilities, scores or None) of an entry, written with or without scores."""
    entry = orjson.loads(value)
    return entry[0], entry[1], entry[2] if len(entry) > 2 else None
