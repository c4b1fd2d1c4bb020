"""A fake Redis client for the real SlidingWindow (gateway/guard/ratelimit.py): pipelines of
EVALSHAs, answered or failed as a test asks, optionally held until the test lets them go."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

#: The script's reply for an admitted request: admitted, 9 left, the window moves in 30 s.
ADMITTED = [1, 9, 30_000]


class FakeRedis:
    """Answers each EVALSHA with `reply` (returned, as redis-py does with raise_on_error=False,
    when it is an exception), or fails a whole pipeline: with `failure` every one, with the
    next of `failures` one each (the first pipeline the first, ...). With a `gate`, each
    pipeline waits for it first. `sizes` holds the checks of each pipeline sent."""

    def __init__(
        self,
        reply: Any = ADMITTED,
        failure: BaseException | None = None,
        failures: Iterable[BaseException] = (),
        gate: asyncio.Event | None = None,
    ) -> None:
        self.reply = reply
        self.failure = failure
        self.failures = list(failures)
        self.gate = gate
        self.sizes: list[int] = []

    @property
    def round_trips(self) -> int:
        return len(self.sizes)

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    async def script_load(self, script: str) -> str:
        return "sha"


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.checks = 0

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> None:
        self.checks += 1

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        redis = self.redis
        redis.sizes.append(self.checks)
        if redis.gate is not None:
            await redis.gate.wait()
        if redis.failures:
            raise redis.failures.pop(0)
        if redis.failure is not None:
            raise redis.failure
        return [redis.reply] * self.checks
