"""The worker's small HTTP server: /healthz, /readyz (broker reachable) and /metrics.

Metrics come from every pool process: prometheus_client's multiprocess mode, whose directory
`python -m worker` sets before any metric exists; the queue length is read at each scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from jobs.celery_app import queue_key
from worker.queue_length import QueueLengthCollector
from worker.settings import WorkerSettings

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        return


def health_app(
    settings: WorkerSettings,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    # No retries: a scrape during an outage costs one short timeout, not several.
    queue_redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
    )
    registry.register(QueueLengthCollector(queue_redis, queue_key(settings)))
    metrics = make_wsgi_app(registry)
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=max(settings.redis_timeout_seconds, 1.0),
        socket_connect_timeout=max(settings.redis_timeout_seconds, 1.0),
    )

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            try:
                redis.ping()
            except RedisError as exc:
                body = {"status": "broker unreachable", "error": type(exc).__name__}
                return _json(start_response, "503 Service Unavailable", body)
            return _json(start_response, "200 OK", {"status": "ready"})
        return _json(start_response, "404 Not Found", {"error": "no such route"})

    return app


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [orjson.dumps(body)]


def start_health_server(settings: WorkerSettings) -> None:
    """Serve health and metrics from a daemon thread of the worker's main process."""
    assert settings.worker_health_port is not None
    server = make_server(
        settings.worker_health_host,
        settings.worker_health_port,
        health_app(settings),
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
