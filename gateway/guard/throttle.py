"""Failed authentications throttled per client address, shared by every gateway.

Each refused key (missing, unknown or revoked; not a valid key lacking a scope) counts once
against its client address (gateway/http/addresses.py) in the rate limiter's sliding window,
in the durable Redis, so every replica sees the same count. Past the limit
(MODELGATE_AUTH_FAILURE_LIMIT, 20 a minute by default) a refused key is answered 429 with
`Retry-After` instead of 401. Only failures are counted, and only after the key was checked: a
valid key is never slowed or refused by the throttle, whatever its address has done, and it
costs no Redis call.

When that Redis is unreachable, each gateway counts in its own memory (`limits`' memory
storage) until it is back: the limit then holds per replica instead of across them, and never
fails open.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from gateway.guard.keys import parse_one_limit
from gateway.guard.ratelimit import STORAGE_ERRORS, RateLimited, SlidingWindow
from gateway.metrics import AUTH_THROTTLED

logger = logging.getLogger(__name__)

KIND = "authfail"


class AuthThrottled(RateLimited):
    code = "auth_throttled"


class AuthThrottle:
    """Counts failed authentications by address; raises AuthThrottled past the limit."""

    def __init__(self, window: SlidingWindow, limit: str) -> None:
        self.window = window
        self.item: RateLimitItem = parse_one_limit(limit)
        self._local: SlidingWindowCounterRateLimiter | None = None

    async def failed(self, address: str) -> None:
        """Count one failure from `address`; raises AuthThrottled once it is over the limit."""
        try:
            admitted, _, reset = await self.window.acquire(self.item, KIND, address)
        except STORAGE_ERRORS as exc:
            logger.warning("auth throttle storage failed, counting locally: %s", type(exc).__name__)
            admitted, reset = self._count_locally(address)
        if admitted:
            return
        AUTH_THROTTLED.inc()
        retry = max(1, math.ceil(reset))
        raise AuthThrottled(
            f"too many failed authentications from this address; retry in {retry} s",
            {"Retry-After": str(retry)},
        )

    def _count_locally(self, address: str) -> tuple[bool, float]:
        if self._local is None:
            self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        admitted = self._local.hit(self.item, KIND, address)
        stats = self._local.get_window_stats(self.item, KIND, address)
        return admitted, max(0.0, stats.reset_time - time.time())
