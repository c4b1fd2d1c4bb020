"""What the lifespan builds and the routes use, held in one object on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from gateway.dataplane.models import ModelManager
from gateway.dataplane.plane import DataPlane
from gateway.guard.auth import KeyRing
from gateway.guard.ratelimit import RateLimiter
from gateway.guard.throttle import AuthThrottle
from gateway.settings import GatewaySettings
from jobs.client import JobClient


@dataclass
class GatewayState:
    settings: GatewaySettings
    models: ModelManager
    plane: DataPlane
    keys: KeyRing
    limiter: RateLimiter
    throttle: AuthThrottle
    jobs: JobClient
    redis: Redis
    cache_redis: Redis | None
    http: httpx.AsyncClient
