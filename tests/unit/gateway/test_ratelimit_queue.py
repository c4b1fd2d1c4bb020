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
from tests.unit.gateway.redis_pipelines import FakeRedis

ITEM = parse("1000/minute")


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
        gate = asyncio.Event()
        redis = FakeRedis(failures=[RedisConnectionError("gone")], gate=gate)
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 5)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        return outcomes, redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    assert sizes == [1]  # one pipeline, one timeout: the five queued ones were never sent


def test_a_bug_in_a_pipeline_is_not_handed_to_the_checks_queued_behind_it() -> None:
    async def scenario() -> tuple[list[Any], list[int]]:
        gate = asyncio.Event()
        redis = FakeRedis(failures=[TypeError("a bug")], gate=gate)  # the first pipeline only
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 3)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True), redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert isinstance(outcomes[0], TypeError)
    assert outcomes[1:] == [(True, 9, 30.0)] * 3 and sizes == [1, 3]


def test_a_cancelled_pipeline_cancels_its_checks_and_those_queued_behind_it() -> None:
    async def scenario() -> list[Any]:
        redis = FakeRedis(gate=asyncio.Event())
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        tasks = await _queue_behind_first(window, 2)
        await window.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


def test_a_pipeline_carries_at_most_max_batch_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BATCH", 4)

    async def scenario() -> tuple[list[Any], list[int]]:
        redis = FakeRedis()
        window = SlidingWindow(redis, "t:")  # type: ignore[arg-type]
        outcomes = await asyncio.gather(*(window.acquire(ITEM, "predict", "k") for _ in range(10)))
        return list(outcomes), redis.sizes

    outcomes, sizes = asyncio.run(scenario())
    assert len(outcomes) == 10 and sizes == [4, 4, 2]
