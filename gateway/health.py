"""Dependency checks for /readyz: each reports up or down and never raises."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError


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
    return report
