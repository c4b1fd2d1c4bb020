"""A Redis outage degrades service: predictions go on, /readyz says Redis is down, then up."""

from __future__ import annotations

import signal
from pathlib import Path

from devstack.processes import RedisServer, wait_until
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_redis_and_cache_down_then_back(
    tmp_path: Path, gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    redis = RedisServer(tmp_path / "redis", "durable")
    cache = RedisServer(tmp_path / "cache", "cache")
    redis.start()
    cache.start()
    try:
        gateway = gateway_factory(redis_url=redis.url, cache_url=cache.url)
        ready = gateway.http.get("/readyz").json()["dependencies"]
        assert ready["redis"]["ok"] is True and ready["cache"]["ok"] is True

        cache.stop(signal.SIGKILL)  # the cache alone first
        alone = gateway.http.get("/readyz").json()["dependencies"]
        assert alone["cache"]["ok"] is False and alone["redis"]["ok"] is True

        redis.stop(signal.SIGKILL)
        for _ in range(20):
            assert gateway.http.post("/v1/models/iris/predict", json=ROW).status_code == 200
        down = gateway.http.get("/readyz")
        assert down.status_code == 200  # one Redis must not take every replica out of rotation
        assert down.json()["dependencies"]["redis"]["ok"] is False
        assert down.json()["dependencies"]["cache"]["ok"] is False

        redis.start()  # same port, same data directory
        cache.start()
        wait_until(
            lambda: all(
                d["ok"] for d in gateway.http.get("/readyz").json()["dependencies"].values()
            ),
            10,
            "redis and cache reported up",
        )
    finally:
        redis.stop()
        cache.stop()
