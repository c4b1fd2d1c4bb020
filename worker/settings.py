"""Settings read only by the worker."""

from __future__ import annotations

from pydantic import Field

from kernel.settings import SharedSettings


class WorkerSettings(SharedSettings):
    """Settings read only by the worker."""

    worker_concurrency: int = Field(default=2, ge=1)
    """Pool processes of one worker (prefork)."""

    worker_health_port: int | None = None
    """Port of the worker's health and metrics server; off when unset."""

    worker_health_host: str = "127.0.0.1"
    """Interface of the health and metrics server (0.0.0.0 in a container, for probes)."""

    log_level: str = "INFO"
    """Level of the JSON logs on stdout."""
