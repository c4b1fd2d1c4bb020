"""Authentication from an in-memory snapshot of the keys, refreshed from the durable Redis.

A Redis outage leaves the last snapshot in force: authentication never opens, and never breaks
for keys that were valid before the outage.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import Headers

from gateway.guard.keys import SCOPES, ApiKey, key_digest, key_id_of, parse_one_limit
from gateway.http.errors import GatewayError

logger = logging.getLogger(__name__)


class Unauthorized(GatewayError):
    code = "unauthorized"


class Forbidden(GatewayError):
    code = "forbidden"


class AmbiguousCredentials(GatewayError):
    code = "ambiguous_credentials"


@dataclass(frozen=True)
class KeySnapshot:
    """Active keys by id (`mg_` keys) and by digest (imported keys); immutable, swapped whole."""

    by_id: Mapping[str, ApiKey] = field(default_factory=dict)
    by_digest: Mapping[str, ApiKey] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: list[ApiKey]) -> KeySnapshot:
        active = [k for k in keys if not k.revoked]
        return cls({k.id: k for k in active}, {k.sha256: k for k in active})

    def authenticate(self, value: str) -> ApiKey | None:
        digest = key_digest(value)
        key_id = key_id_of(value)
        candidate = self.by_id.get(key_id) if key_id else None
        if candidate is None:
            candidate = self.by_digest.get(digest)
        # The digest is compared in constant time, never the key as a plain string.
        if candidate is not None and hmac.compare_digest(candidate.sha256, digest):
            return candidate
        return None


def presented_key(headers: Headers) -> str | None:
    """The key from `X-API-Key` (what existing clients send) or `Authorization: Bearer`.

    More than one credential is refused (AmbiguousCredentials) rather than one picked: two
    `X-API-Key` or `Authorization` headers, or a key and a Bearer token that differ. A proxy or
    a client library that adds its own header must not decide, silently, which key counts."""
    keys = headers.getlist("x-api-key")
    authorizations = headers.getlist("authorization")
    if len(keys) > 1 or len(authorizations) > 1:
        raise AmbiguousCredentials("send one credential: X-API-Key or Authorization, once")
    key = keys[0].strip() if keys else ""
    token = ""
    if authorizations:
        scheme, _, value = authorizations[0].partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if key and token and not hmac.compare_digest(key.encode(), token.encode()):
        raise AmbiguousCredentials("X-API-Key and the Bearer token differ: send one credential")
    return key or token or None


def bootstrap_key(sha256: str | None, owner: str) -> ApiKey | None:
    """The admin key whose hash comes from the environment, so a fresh deployment can start."""
    if not sha256:
        return None
    return ApiKey(
        id="bootstrap", name="bootstrap", owner=owner, scopes=SCOPES, sha256=sha256.lower()
    )


class KeyRing:
    """Holds the current snapshot and refreshes it every `refresh_seconds`."""

    def __init__(
        self, redis: Redis, prefix: str, refresh_seconds: float, bootstrap: ApiKey | None
    ) -> None:
        self.redis = redis
        self.hash_key = f"{prefix}apikeys"
        self.refresh_seconds = refresh_seconds
        self.bootstrap = bootstrap
        self.snapshot = KeySnapshot.of([bootstrap] if bootstrap else [])
        self.loaded_at: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> bool:
        try:
            raw = await self.redis.hgetall(self.hash_key)
        except (RedisError, OSError) as exc:
            if not self._failing:
                logger.warning("key refresh failed, keeping the snapshot: %s", type(exc).__name__)
            self._failing = True
            return False
        keys = []
        for key_id, value in raw.items():
            try:
                key = ApiKey.from_json(value)
                for limit in (key.predict_limit, key.jobs_limit, key.reads_limit):
                    if limit is not None:
                        parse_one_limit(limit)
            except (ValueError, TypeError):  # one bad record must not freeze every other key
                logger.error("skipping unreadable key record %r", key_id)
                continue
            keys.append(key)
        if self.bootstrap is not None:
            keys.append(self.bootstrap)
        self.snapshot = KeySnapshot.of(keys)
        self.loaded_at = time.time()
        if self._failing:
            logger.info("key refresh works again")
        self._failing = False
        return True

    async def _follow(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any surprise, or revocations stop
                logger.exception("key refresh failed")
            await asyncio.sleep(self.refresh_seconds)

    def authenticate(self, headers: Headers, scope: str) -> ApiKey:
        value = presented_key(headers)
        key = self.snapshot.authenticate(value) if value else None
        if key is None:
            raise Unauthorized("Invalid or missing API key")
        if scope not in key.scopes:
            granted = ", ".join(key.scopes) or "none"
            raise Forbidden(f"this route needs the '{scope}' scope; this API key has: {granted}")
        return key
