"""`python -m worker`: a Celery worker running chunk tasks, with JSON logs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis import Redis

from jobs.celery_app import QUEUE, create_celery_app
from jobs.store import JobStore
from kernel.loading import LoadOptions
from kernel.logs import configure_logging
from registry.client import Registry, configure_mlflow_http
from worker.broker import use_transport
from worker.settings import WorkerSettings

if TYPE_CHECKING:
    from worker.tasks import ChunkRunner


def runner_factory(settings: WorkerSettings) -> Callable[[], ChunkRunner]:
    """Builds the ChunkRunner on first use, so each pool process makes its own connections."""
    runner: ChunkRunner | None = None

    def get() -> ChunkRunner:
        nonlocal runner
        if runner is None:
            from worker.tasks import ChunkRunner

            redis = Redis.from_url(
                settings.redis_url,
                socket_timeout=10,
                socket_connect_timeout=max(settings.redis_timeout_seconds, 1.0),
            )
            store = JobStore(
                redis,
                settings.key_prefix,
                settings.job_ttl_seconds,
                settings.chunk_size,
                results_ttl_seconds=settings.job_results_ttl_seconds,
            )
            runner = ChunkRunner(
                store,
                Registry(settings.mlflow_tracking_uri),
                settings.max_chunk_deliveries,
                LoadOptions.from_settings(settings),
            )
        return runner

    return get


def main() -> None:
    settings = WorkerSettings()
    configure_logging(
        settings.log_level,
        log_file=settings.log_file,
        max_bytes=settings.log_file_max_bytes,
        backups=settings.log_file_backups,
    )
    configure_mlflow_http(settings)
    # Pool processes write their metrics here; it must exist before any metric is created.
    metrics_dir = tempfile.mkdtemp(prefix="modelgate-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from worker.tasks import register_tasks  # creates the metrics

    app = create_celery_app(settings)
    use_transport(app, settings.redis_url)  # survives a broker restart (kombu 5.7.0)
    register_tasks(app, runner_factory(settings))
    if settings.worker_health_port:
        from worker.health import start_health_server

        start_health_server(settings)
    try:
        app.worker_main(
            [
                "worker",
                f"--loglevel={settings.log_level}",
                f"--concurrency={settings.worker_concurrency}",
                "--pool=prefork",
                f"--queues={QUEUE}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
