"""Settings read by both the gateway and the worker."""

from __future__ import annotations

from registry.settings import RegistrySettings


class SharedSettings(RegistrySettings):
    """Redis addresses and key prefix, shared by every Modelgate process."""

    redis_url: str = "redis://127.0.0.1:6380/0"
    """Durable Redis: broker, job records, API keys, rate-limit counters (noeviction, AOF)."""

    cache_url: str | None = None
    """Cache Redis for predictions (allkeys-lru, no persistence); the durable one when unset."""

    key_prefix: str = "modelgate:"
    """Prefix of every Redis key, so tests and deployments can share a server."""

    redis_timeout_seconds: float = 0.5
    """Connect and socket timeout of Redis calls; an outage degrades service, never hangs it."""

    @property
    def effective_cache_url(self) -> str:
        return self.cache_url or self.redis_url
