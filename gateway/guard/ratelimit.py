"""Per-key rate limits shared by every replica, in the durable Redis.

A sliding-window counter (the `limits` library's algorithm: this window's count plus the last
window's, weighted by how much of it still overlaps) in one Lua script, so that admitting a
request and reading what is left for the headers is one round trip and O(1) whatever the limit.
(`limits`' own async API needs two calls, and its moving window stores one list entry per
request, which costs Redis time in proportion to the limit.) `limits` still parses the limits.

Headers follow draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy: "predict";q=600;w=60`
and `RateLimit: "predict";r=599;t=60`. When Redis fails, `fail_open` decides: admit (logged and
counted) or refuse with 503; never a 500. Only storage failures are taken for that (see
STORAGE_ERRORS): any other exception is a bug, which the request middleware logs with its
traceback and answers with a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from gateway.guard.keys import ApiKey, parse_one_limit
from gateway.http.errors import GatewayError
from gateway.metrics import RATE_LIMIT_STORAGE_ERRORS, RATE_LIMITED

logger = logging.getLogger(__name__)


#: What the Redis calls of a check can raise when the storage, not the code, fails: redis-py's
#: own errors (connection, timeout, and error replies such as OOM or READONLY), and the errors of
#: the socket under it, which redis-py does not always wrap: OSError, which covers the builtin
#: ConnectionError and TimeoutError (asyncio.TimeoutError is TimeoutError since Python 3.11).
#: Anything else (a TypeError reading the reply, say) is a bug: taken for an outage, it would be
#: counted as one and answered by `fail_open` (all admitted, or all refused) with no traceback.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


class RateLimited(GatewayError):
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class RateLimitUnavailable(GatewayError):
    code = "rate_limit_unavailable"


#: Pipelines of checks waiting for Redis at once; the checks that arrive meanwhile wait for the
#: first to come back, and go together in the next (SlidingWindow).
MAX_IN_FLIGHT = 1
#: Most checks in one pipeline; those past it go in the next.
MAX_BATCH = 512

# KEYS: the previous and the current window's counters. ARGV: limit, window (ms), cost.
# Returns {admitted (1/0), remaining, ms until the current window ends}.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local current_ttl = redis.call('pttl', KEYS[2])
if current_ttl > 0 and current_ttl < window then
  redis.call('rename', KEYS[2], KEYS[1])
  redis.call('set', KEYS[2], 0, 'PX', current_ttl + window)
end
local previous = tonumber(redis.call('get', KEYS[1]) or '0')
local previous_ttl = math.max(redis.call('pttl', KEYS[1]), 0)
local current = tonumber(redis.call('get', KEYS[2]) or '0')
current_ttl = math.max(redis.call('pttl', KEYS[2]), 0)
local weighted = math.floor(previous * previous_ttl / window) + current
local admitted = 0
if weighted + cost <= limit then
  admitted = 1
  weighted = weighted + cost
  if current_ttl > 0 then
    redis.call('incrby', KEYS[2], cost)
  else
    redis.call('set', KEYS[2], cost, 'PX', window * 2)
    current_ttl = window * 2
  end
end
local reset = current_ttl - window
if reset < 0 then reset = current_ttl end
return {admitted, limit - weighted, reset}
"""


class SlidingWindow:
    """The counter script on a Redis client.

    Checks go out together, as one pipeline of EVALSHAs: one write and one read for all of
    them, which under load costs a fraction of a round trip per request. Each still counts
    atomically on its own. A pipeline takes the checks that arrived in the same turn of the
    event loop, and, while MAX_IN_FLIGHT pipelines are waiting for Redis, every check that
    arrives meanwhile (a group commit): requests that do not arrive in the same turn, such as
    gRPC calls, which grpc.aio accepts one at a time, one turn each, still share a pipeline
    under load; an idle gateway sends each check at once. A pipeline carries at most MAX_BATCH
    checks. When one fails for the storage, the checks queued behind it fail with it rather than
    wait for the same outage again, so that an outage still costs one timeout.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.sha = hashlib.sha1(_SLIDING_WINDOW.encode()).hexdigest()
        self._waiting: list[tuple[list[str], list[int], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._scheduled = False  # a flush is due in this turn of the loop

    async def acquire(self, item: RateLimitItem, kind: str, key_id: str) -> tuple[bool, int, float]:
        """(admitted, remaining, seconds until the window moves) after counting one request."""
        window = item.get_expiry()
        # One hash tag per limit, so both counters live on one node of a Redis Cluster.
        base = f"{self.prefix}ratelimit:{{{kind}:{key_id}:{item.amount}:{window}}}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(
            ([base + ":previous", base + ":current"], [item.amount, window * 1000, 1], future)
        )
        if not self._scheduled and len(self._flushing) < MAX_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._flush)
        return _interpret(await future)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._waiting:
            return
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        task = asyncio.create_task(self._send(batch))
        self._flushing.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        """A pipeline is back: the checks that waited for it go out in the next one (or, when
        the window was closed, are cancelled: no pipeline will carry them)."""
        self._flushing.discard(task)
        if task.cancelled():
            _resolve(self._waiting, asyncio.CancelledError())
            self._waiting = []
        elif not self._scheduled:
            self._flush()

    async def _send(self, batch: list[tuple[list[str], list[int], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._evalsha_all(batch)
            forgotten = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if forgotten:
                # A restarted (or flushed) Redis forgot the script: load it, and send again only
                # the checks it refused, so that none of the others counts twice.
                await self.redis.script_load(_SLIDING_WINDOW)
                again = await self._evalsha_all([batch[i] for i in forgotten])
                for i, result in zip(forgotten, again, strict=True):
                    results[i] = result
        except asyncio.CancelledError:
            _resolve(batch, asyncio.CancelledError())
            raise
        except Exception as exc:
            # Handed to every waiting check rather than judged here: each future must be
            # resolved, and RateLimiter.check decides what is a storage failure.
            results = [exc] * len(batch)
            if isinstance(exc, STORAGE_ERRORS):
                # The checks queued behind this pipeline would only wait for the same outage
                # again: they fail with it now, so that an outage costs one timeout.
                queued, self._waiting = self._waiting, []
                _resolve(queued, exc)
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _evalsha_all(
        self, batch: list[tuple[list[str], list[int], asyncio.Future[Any]]]
    ) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        for task in list(self._flushing):
            task.cancel()


def _resolve(
    checks: list[tuple[list[str], list[int], asyncio.Future[Any]]], error: BaseException
) -> None:
    """Fail every unresolved check of `checks` with `error` (cancel it, for a cancellation)."""
    for _, _, future in checks:
        if future.done():
            continue
        if isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)


def _interpret(reply: Any) -> tuple[bool, int, float]:
    """The script's {admitted, remaining, ms until the window moves} as Python values."""
    admitted, remaining, reset_ms = reply
    return bool(admitted), int(remaining), int(reset_ms) / 1000


@dataclass(frozen=True)
class Decision:
    """Headers to send with the answer."""

    headers: dict[str, str]


class RateLimiter:
    """Moving-window limits per (key, kind); atomic in Redis, so replicas never over-admit."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        defaults: dict[str, str],
        *,
        fail_open: bool,
        breaker_seconds: float = 1.0,
    ) -> None:
        self.defaults = {kind: parse_one_limit(limit) for kind, limit in defaults.items()}
        self.fail_open = fail_open
        self.breaker_seconds = breaker_seconds
        self._broken_until = 0.0
        self.window = SlidingWindow(redis, prefix)

    def item_for(self, kind: str, key: ApiKey) -> RateLimitItem:
        own = {"predict": key.predict_limit, "jobs": key.jobs_limit, "reads": key.reads_limit}[kind]
        return parse_one_limit(own) if own else self.defaults[kind]

    async def check(self, kind: str, key: ApiKey) -> Decision:
        """Count one request of `kind` for `key`; raises RateLimited past the limit."""
        item = self.item_for(kind, key)
        if time.monotonic() < self._broken_until:
            return self._storage_down(kind)
        try:
            allowed, remaining, reset = await self.window.acquire(item, kind, key.id)
        except STORAGE_ERRORS as exc:  # no storage failure may become a 500; a bug may
            logger.warning("rate-limit storage failed: %s", type(exc).__name__)
            self._broken_until = time.monotonic() + self.breaker_seconds
            return self._storage_down(kind)
        reset_in = max(0, math.ceil(reset))
        window = item.get_expiry()
        headers = {
            "RateLimit-Policy": f'"{kind}";q={item.amount};w={window}',
            "RateLimit": f'"{kind}";r={max(0, remaining)};t={reset_in}',
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
