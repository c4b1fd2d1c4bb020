"""What the lifespan builds and the routes use, held in one object on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from gateway.auth import KeyRing
from gateway.predict import Predictor
from gateway.ratelimit import RateLimiter
from gateway.serving import ModelManager
from gateway.settings import GatewaySettings
from worker.client import JobClient


@dataclass
class GatewayState:
    settings: GatewaySettings
    models: ModelManager
    predictor: Predictor
    keys: KeyRing
    limiter: RateLimiter
    jobs: JobClient
    redis: Redis
    cache: Redis | None
    http: httpx.AsyncClient
