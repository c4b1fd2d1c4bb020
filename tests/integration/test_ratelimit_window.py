"""The sliding-window script against a real redis-server (gateway/guard/ratelimit.py)."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from limits import parse
from redis.asyncio import Redis

from devstack.processes import RedisServer
from gateway.guard import ratelimit
from gateway.guard.ratelimit import SlidingWindow

pytestmark = pytest.mark.integration


def test_counts_down_refuses_at_the_limit_and_slides(redis_durable: RedisServer) -> None:
    item = parse("5/second")
    key_id = secrets.token_hex(4)

    async def scenario() -> list[tuple[bool, int, float]]:
        redis = Redis.from_url(redis_durable.url)
        window = SlidingWindow(redis, "mgtest:")
        try:
            seen = [await window.acquire(item, "predict", key_id) for _ in range(6)]
            # Half a window later the old window still weighs about half: mostly refused.
            await asyncio.sleep(1.5)
            seen.append(await window.acquire(item, "predict", key_id))
            # Two windows later nothing of the first is left.
            await asyncio.sleep(1.6)
            seen += [await window.acquire(item, "predict", key_id) for _ in range(5)]
            return seen
        finally:
            await redis.aclose()

    started = time.monotonic()
    seen = asyncio.run(scenario())
    assert [s[:2] for s in seen[:6]] == [
        (True, 4), (True, 3), (True, 2), (True, 1), (True, 0), (False, 0)
    ]  # fmt: skip
    assert 0 < seen[0][2] <= 1.0  # the window moves within a second
    assert seen[6][0] is True and seen[6][1] < 4  # the previous window still counts, weighted
    assert time.monotonic() - started < 5
    assert all(admitted for admitted, _, _ in seen[7:11])


def test_limits_of_different_keys_and_kinds_do_not_mix(redis_durable: RedisServer) -> None:
    item = parse("1/minute")

    async def scenario() -> list[bool]:
        redis = Redis.from_url(redis_durable.url)
        window = SlidingWindow(redis, "mgtest:")
        try:
            a, b = secrets.token_hex(4), secrets.token_hex(4)
            return [
                (await window.acquire(item, "predict", a))[0],
                (await window.acquire(item, "predict", b))[0],
                (await window.acquire(item, "reads", a))[0],
                (await window.acquire(item, "predict", a))[0],
            ]
        finally:
            await redis.aclose()

    assert asyncio.run(scenario()) == [True, True, True, False]


def test_concurrent_checks_share_pipelines_and_stay_exact(redis_durable: RedisServer) -> None:
    item = parse("20/minute")
    key_id = secrets.token_hex(4)

    async def scenario() -> tuple[list[tuple[bool, int, float]], int]:
        redis = Redis.from_url(redis_durable.url)
        window = SlidingWindow(redis, "mgtest:")
        sent = 0
        send = window._evalsha_all

        async def counting(batch):  # type: ignore[no-untyped-def]
            nonlocal sent
            sent += 1
            return await send(batch)

        window._evalsha_all = counting  # type: ignore[method-assign]
        try:
            seen = await asyncio.gather(
                *(window.acquire(item, "predict", key_id) for _ in range(50))
            )
            return list(seen), sent
        finally:
            await redis.aclose()

    seen, pipelines = asyncio.run(scenario())
    admitted = [remaining for ok, remaining, _ in seen if ok]
    assert len(admitted) == 20
    assert sorted(admitted) == list(range(20))  # each admission saw its own count
    assert pipelines <= 3  # 50 checks, one turn of the loop: one pipeline (+ a script reload)


def test_checks_from_separate_turns_wait_for_the_pipeline_in_flight(
    redis_durable: RedisServer,
) -> None:
    """One check a turn, as gRPC calls arrive: the checks that arrive while a pipeline waits for
    Redis go together in the next one (a group commit), and still count exactly."""
    item = parse("30/minute")
    key_id = secrets.token_hex(4)

    async def scenario() -> tuple[list[tuple[bool, int, float]], list[int]]:
        redis = Redis.from_url(redis_durable.url)
        window = SlidingWindow(redis, "mgtest:")
        await redis.script_load(ratelimit._SLIDING_WINDOW)  # no NOSCRIPT retry in the count
        sizes: list[int] = []
        queued = asyncio.Event()
        send = window._evalsha_all

        async def counting(batch):  # type: ignore[no-untyped-def]
            sizes.append(len(batch))
            if len(sizes) == 1:
                await queued.wait()  # the first pipeline is out until the others queued
            return await send(batch)

        window._evalsha_all = counting  # type: ignore[method-assign]

        async def one(turn: int) -> tuple[bool, int, float]:
            for _ in range(turn):
                await asyncio.sleep(0)
            check = window.acquire(item, "predict", key_id)
            if turn == 59:
                asyncio.get_running_loop().call_soon(queued.set)
            return await check

        try:
            seen = await asyncio.gather(*(one(turn) for turn in range(60)))
            return list(seen), sizes
        finally:
            await redis.aclose()

    seen, sizes = asyncio.run(scenario())
    admitted = [remaining for ok, remaining, _ in seen if ok]
    assert len(admitted) == 30 and sorted(admitted) == list(range(30))
    # The first check goes alone; the 59 that arrived in the 59 turns after it, together.
    assert sizes == [1, 59]
