"""A Redis outage degrades service: predictions go on, /readyz says Redis is down, then up."""

from __future__ import annotations

import signal
from pathlib import Path

from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory
from tests.integration.processes import RedisServer, wait_until


def test_redis_down_then_back(
    tmp_path: Path, gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    redis = RedisServer(tmp_path / "redis", "durable")
    redis.start()
    try:
        gateway = gateway_factory(redis_url=redis.url, cache_url="")
        ready = gateway.http.get("/readyz").json()
        assert ready["dependencies"]["redis"]["ok"] is True

        redis.stop(signal.SIGKILL)
        for _ in range(20):
            response = gateway.http.post(
                "/v1/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
            )
            assert response.status_code == 200
        down = gateway.http.get("/readyz")
        assert down.status_code == 200  # one Redis must not take every replica out of rotation
        assert down.json()["dependencies"]["redis"]["ok"] is False
        assert down.json()["dependencies"]["cache"]["ok"] is False

        redis.start()  # same port, same data directory
        wait_until(
            lambda: gateway.http.get("/readyz").json()["dependencies"]["redis"]["ok"],
            10,
            "redis reported up",
        )
    finally:
        redis.stop()
