"""Per-key rate limits shared by every replica, in the durable Redis, with the `limits` library.

Headers follow draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy: "predict";q=600;w=60`
and `RateLimit: "predict";r=599;t=60`. When Redis fails, `fail_open` decides: admit (logged and
counted) or refuse with 503; never a 500.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.errors import GatewayError
from gateway.keys import ApiKey, parse_one_limit
from gateway.metrics import RATE_LIMIT_STORAGE_ERRORS, RATE_LIMITED

logger = logging.getLogger(__name__)


class RateLimited(GatewayError):
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class RateLimitUnavailable(GatewayError):
    code = "rate_limit_unavailable"


@dataclass(frozen=True)
class Decision:
    """Headers to send with the answer."""

    headers: dict[str, str]


class RateLimiter:
    """Moving-window limits per (key, kind); atomic in Redis, so replicas never over-admit."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        defaults: dict[str, str],
        *,
        fail_open: bool,
        timeout: float,
        breaker_seconds: float = 1.0,
    ) -> None:
        self.defaults = {kind: parse_one_limit(limit) for kind, limit in defaults.items()}
        self.fail_open = fail_open
        self.breaker_seconds = breaker_seconds
        self._broken_until = 0.0
        self.storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=f"{prefix}ratelimit",
            wrap_exceptions=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]  # passed on to redis-py
        )
        self.limiter = MovingWindowRateLimiter(self.storage)

    def item_for(self, kind: str, key: ApiKey) -> RateLimitItem:
        own = {"predict": key.predict_limit, "jobs": key.jobs_limit, "reads": key.reads_limit}[kind]
        return parse_one_limit(own) if own else self.defaults[kind]

    async def check(self, kind: str, key: ApiKey) -> Decision:
        """Count one request of `kind` for `key`; raises RateLimited past the limit."""
        item = self.item_for(kind, key)
        if time.monotonic() < self._broken_until:
            return self._storage_down(kind)
        try:
            allowed = await self.limiter.hit(item, kind, key.id)
            stats = await self.limiter.get_window_stats(item, kind, key.id)
        except Exception as exc:  # limits wraps every storage failure; none may become a 500
            logger.warning("rate-limit storage failed: %s", type(exc).__name__)
            self._broken_until = time.monotonic() + self.breaker_seconds
            return self._storage_down(kind)
        reset_in = max(0, math.ceil(stats.reset_time - time.time()))
        window = item.get_expiry()
        headers = {
            "RateLimit-Policy": f'"{kind}";q={item.amount};w={window}',
            "RateLimit": f'"{kind}";r={max(0, stats.remaining)};t={reset_in}',
        }
        if not allowed:
            RATE_LIMITED.labels(kind=kind).inc()
            headers["Retry-After"] = str(max(1, reset_in))
            raise RateLimited(f"rate limit of {item.amount} per {window} s exceeded", headers)
        return Decision(headers)

    def _storage_down(self, kind: str) -> Decision:
        RATE_LIMIT_STORAGE_ERRORS.labels(
            kind=kind, outcome="open" if self.fail_open else "closed"
        ).inc()
        if self.fail_open:
            return Decision({})
        raise RateLimitUnavailable("rate limiting is unavailable; retry shortly")
