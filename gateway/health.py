"""What /readyz reports: dependency checks (each never raises) and whether the gateway drains;
and the loop that keeps the dependency and model gauges current for the alerts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.metrics import DEPENDENCY_UP, MODEL_READY

if TYPE_CHECKING:
    from gateway.state import GatewayState

logger = logging.getLogger(__name__)


class Drain:
    """Set when the gateway is asked to stop: from then on /readyz answers 503 "draining", so
    load balancers and Kubernetes endpoints take it out while it still serves."""

    def __init__(self) -> None:
        self.started_at: float | None = None  # time.monotonic() of the stop signal

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at


async def check_redis(client: Redis) -> dict[str, Any]:
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


async def check_registry(http: httpx.AsyncClient, tracking_uri: str) -> dict[str, Any]:
    try:
        response = await http.get(tracking_uri.rstrip("/") + "/health")
    except httpx.HTTPError as exc:
        return {"ok": False, "error": type(exc).__name__}
    if response.status_code != 200:
        return {"ok": False, "error": f"status {response.status_code}"}
    return {"ok": True}


async def dependency_report(
    redis: Redis, cache: Redis | None, http: httpx.AsyncClient, tracking_uri: str
) -> dict[str, Any]:
    """Durable Redis, cache Redis (when it is a separate server) and registry, checked at once."""
    checks = [check_redis(redis), check_registry(http, tracking_uri)]
    if cache is not None:
        checks.append(check_redis(cache))
    results = await asyncio.gather(*checks)
    report = {"redis": results[0], "registry": results[1]}
    report["cache"] = results[2] if cache is not None else {**results[0], "same_as": "redis"}
    for name, result in report.items():
        DEPENDENCY_UP.labels(name).set(1 if result["ok"] else 0)
    return report


async def watch_health(state: GatewayState, interval: float) -> None:
    """Check the dependencies and the models every `interval` seconds, so that the gauges (and
    the alerts on them) follow an outage even when nothing probes /readyz."""
    while True:
        try:
            for name in state.models.specs:
                MODEL_READY.labels(name).set(1 if name in state.models.current else 0)
            await dependency_report(
                state.redis, state.cache_redis, state.http, state.settings.mlflow_tracking_uri
            )
        except Exception:  # the loop must outlive any surprise, or the gauges freeze
            logger.exception("health check failed")
        await asyncio.sleep(interval)
