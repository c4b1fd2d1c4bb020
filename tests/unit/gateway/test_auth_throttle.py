"""The failed-authentication throttle when its Redis is down: each gateway counts on its own,
never failing open. (Shared counting across gateways: tests/integration/test_edge_limits.py.)"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from devstack.processes import free_port
from gateway.guard.ratelimit import SlidingWindow
from gateway.guard.throttle import AuthThrottle, AuthThrottled


def test_with_redis_down_failures_are_counted_in_memory() -> None:
    async def run() -> None:
        # Nothing listens on this port: every Redis call fails with a connection error.
        redis = Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        throttle = AuthThrottle(SlidingWindow(redis, "t:"), "3/minute")
        for _ in range(3):
            await throttle.failed("192.0.2.1")
        with pytest.raises(AuthThrottled) as caught:
            await throttle.failed("192.0.2.1")
        assert int(caught.value.headers["Retry-After"]) >= 1
        await throttle.failed("192.0.2.2")  # another address has its own count
        await redis.aclose()

    asyncio.run(run())
