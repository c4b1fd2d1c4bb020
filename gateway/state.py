"""What the lifespan builds and the routes use, held in one object on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from gateway.auth import KeyRing
from gateway.batcher import Coalescer
from gateway.cache import PredictionCache
from gateway.ratelimit import RateLimiter
from gateway.serving import ModelManager
from gateway.settings import GatewaySettings
from worker.client import JobClient


@dataclass
class GatewayState:
    settings: GatewaySettings
    models: ModelManager
    coalescer: Coalescer
    keys: KeyRing
    limiter: RateLimiter
    jobs: JobClient
    redis: Redis
    cache_redis: Redis | None
    cache: PredictionCache
    http: httpx.AsyncClient
