"""The group commit of rate-limit checks (gateway/guard/ratelimit.py, SlidingWindow): what the
checks queued behind a pipeline in flight get when it fails or is cancelled, and the cap on a
pipeline's size. The real SlidingWindow on a fake Redis client whose pipelines wait for a gate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from limits import parse
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.guard import ratelimit
from gateway.guard.ratelimit import SlidingWindow

ADMITTED = [1, 9, 30_000]
ITEM = parse("1000/minute")


class GatedRedis:
    """Each pipeline waits for `gate`, then raises the next of `failures` (the first pipeline
    the first, ...), or answers every check once they are used up."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.gate = asyncio.Event()
        self.sizes: list[int] = []

    def pipeline(self, transaction: bool = False) -> GatedPipeline:
        return GatedPipeline(self)

    async def script_load(self, script: str) -> str:
        return "sha"


class GatedPipeline:
    def __init__(self, redis: GatedRedis) -> None:
        self.redis = redis
        self.checks = 0

    async def __aenter__(self) -> GatedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> None:
        self.checks += 1

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.redis.sizes.append(self.checks)
        await self.redis.gate.wait()
        if self.redis.failures:
            raise self.redis.failures.pop(0)
        return [ADMITTED] * self.checks


async def _queue_behind_first(window: SlidingWindow, queued: int) -> list[asyncio.Task[Any]]:
    """One check in flight, then `queued` more, each from a turn of its own."""
    first = asyncio.create_task(window.acquire(ITEM, "predict", "k"))
    while not window._flushing:
        await asyncio.sleep(0)
    tasks = [first]
    for _ in range(queued):
        tasks.append(asyncio.create_task(window.acquire(ITEM, "predict", "k")))
        await asyncio.sleep(0)
    assert len(window._waiting) == queued
    return tasks


def test_checks_queued_behind_a_failing_pipeline_fail_with_it_and_never_reach_redis() -> None:
    async def scenario() -> tuple[list[Any], list[int]]:
        redis = GatedRedis(RedisConnectionError("gone"))
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 5)
        redis.gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        return outcomes, redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    assert sizes == [1]  # one pipeline, one timeout: the five queued ones were never sent


def test_a_bug_in_a_pipeline_is_not_handed_to_the_checks_queued_behind_it() -> None:
    async def scenario() -> tuple[list[Any], list[int]]:
        redis = GatedRedis(TypeError("a bug"))  # the first pipeline only
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 3)
        redis.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True), redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert isinstance(outcomes[0], TypeError)
    assert outcomes[1:] == [(True, 9, 30.0)] * 3 and sizes == [1, 3]


def test_a_cancelled_pipeline_cancels_its_checks_and_those_queued_behind_it() -> None:
    async def scenario() -> list[Any]:
        redis = GatedRedis()
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 2)
        await window.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


def test_a_pipeline_carries_at_most_max_batch_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BATCH", 4)

    async def scenario() -> tuple[list[Any], list[int]]:
        redis = GatedRedis()
        redis.gate.set()
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        outcomes = await asyncio.gather(*(window.acquire(ITEM, "predict", "k") for _ in range(10)))
        return list(outcomes), redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert len(outcomes) == 10 and sizes == [4, 4, 2]
