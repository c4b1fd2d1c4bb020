"""The gateway's app factory and lifespan: everything is built here, nothing at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.dataplane.cache import PredictionCache
from gateway.dataplane.coalescer import Coalescer
from gateway.dataplane.models import ModelManager
from gateway.dataplane.plane import DataPlane
from gateway.dataplane.specs import parse_specs
from gateway.grpc_server import GrpcServer
from gateway.guard.auth import KeyRing, bootstrap_key
from gateway.guard.ratelimit import RateLimiter
from gateway.guard.throttle import AuthThrottle
from gateway.health import Drain, watch_health
from gateway.http.addresses import parse_trusted
from gateway.http.errors import install_error_handlers
from gateway.http.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.openapi import build_openapi
from gateway.protocols import legacy, mlflow_scoring, v1, v2
from gateway.protocols.dispatch import PredictRoutes
from gateway.routes import admin, health, jobs, models
from gateway.routes.jobs import is_job_upload
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from jobs.client import JobClient
from kernel.loading import LoadOptions
from registry.client import Registry, configure_mlflow_http

logger = logging.getLogger(__name__)


#: Every protocol adapter: its FastAPI router, and the POST routes the fast dispatch answers.
PROTOCOLS = (v1, legacy, v2, mlflow_scoring)


def _redis(url: str, timeout: float) -> Redis:
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def create_app(
    settings: GatewaySettings, registry: Registry | None = None, drain: Drain | None = None
) -> FastAPI:
    """Build the gateway; `registry` may be given by tests, else it is made from settings;
    `drain` is set by the server when a stop signal arrives (see gateway/server.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_mlflow_http(settings)
        manager = ModelManager(
            parse_specs(settings.models),
            registry or Registry(settings.mlflow_tracking_uri),
            refresh_seconds=settings.refresh_seconds,
            retry_seconds=settings.model_load_retry_seconds,
            cache_size=settings.version_cache_size,
            options=LoadOptions.from_settings(settings),
            default=settings.default_model,
            max_served=settings.max_served_models,
            registry_calls_per_owner=settings.registry_calls_per_owner,
        )
        timeout = settings.redis_timeout_seconds
        redis = _redis(settings.redis_url, timeout)
        keys = KeyRing(
            redis,
            settings.key_prefix,
            settings.keys_refresh_seconds,
            bootstrap_key(settings.bootstrap_admin_key_sha256, settings.bootstrap_admin_owner),
        )
        # Its own client: no retries, so an outage costs one timeout before the breaker opens.
        limits_redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        limiter = RateLimiter(
            limits_redis,
            settings.key_prefix,
            settings.default_limits,
            fail_open=settings.rate_limit_fail_open,
        )
        cache_redis = (
            _redis(settings.effective_cache_url, timeout)
            if settings.effective_cache_url != settings.redis_url
            else None
        )
        cache = PredictionCache(
            cache_redis or redis,
            settings.key_prefix,
            settings.cache_ttl_seconds,
            settings.cache_timeout_seconds,
            settings.local_cache_size,
        )
        coalescer = Coalescer(
            settings.predict_threads,
            settings.batch_max_rows,
            settings.batch_max_wait_ms / 1000,
            settings.max_pending_predictions,
        )
        plane = DataPlane(
            manager,
            coalescer,
            cache,
            max_rows=settings.max_sync_rows,
            cache_mode=settings.cache_mode,
        )
        state = GatewayState(
            settings=settings,
            models=manager,
            plane=plane,
            keys=keys,
            limiter=limiter,
            throttle=AuthThrottle(limiter.window, settings.auth_failure_limit),
            jobs=JobClient(settings),
            redis=redis,
            cache_redis=cache_redis,
            http=httpx.AsyncClient(timeout=max(timeout, 1.0)),
        )
        app.state.gateway = state
        await keys.refresh()  # one attempt now; the loop keeps trying if Redis is not up yet
        keys.start()
        manager.start()  # loads in the background: the gateway is alive before it is ready
        health_task = asyncio.create_task(
            watch_health(state, settings.dependency_check_seconds), name="health-gauges"
        )
        # gRPC (MODELGATE_GRPC_PORT) on this loop, the one uvicorn serves HTTP on.
        grpc_server = None
        try:
            if settings.grpc_port is not None:  # a port in use fails the start, cleaned up
                grpc_server = GrpcServer(state, app.state.drain, app.version)
                await grpc_server.start()
            logger.info("gateway started", extra={"models": settings.models})
            yield
        finally:
            if grpc_server is not None:
                try:
                    await grpc_server.stop(settings.graceful_shutdown_seconds)
                except Exception:  # the rest must still be closed
                    logger.exception("gRPC server stop failed")
            health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health_task
            await manager.stop()
            await keys.stop()
            coalescer.close()
            await cache.close()
            await state.redis.aclose()
            await limits_redis.aclose()
            if state.cache_redis is not None:
                await state.cache_redis.aclose()
            await state.http.aclose()
            state.jobs.close()

    docs = settings.enable_docs
    app = FastAPI(
        # No OpenTelemetry here (Prometheus metrics instead); checked per request otherwise.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Modelgate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        # `/v1/models/` is a 404, not a 307 to whatever host the request's Host header names.
        redirect_slashes=False,
    )
    app.state.drain = drain or Drain()
    install_error_handlers(app)
    if docs:

        def openapi() -> dict[str, Any]:
            state = getattr(app.state, "gateway", None)
            return build_openapi(app, state.models if state else None, settings)

        app.openapi = openapi  # type: ignore[method-assign]
    # The prediction routes first: routing tries routes in order, and they carry the load.
    for module in (*PROTOCOLS, health, models, admin, jobs):
        app.include_router(module.router)
    # Innermost: the prediction routes skip FastAPI routing (gateway/protocols/dispatch.py).
    hot = [route for module in PROTOCOLS for route in module.HOT_ROUTES]
    routes = [route for module in PROTOCOLS for route in module.router.routes]
    app.add_middleware(PredictRoutes, hot=hot, routes=routes)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "X-API-Key",
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Route-Key",
            ],
            expose_headers=[
                "X-Request-ID",
                "RateLimit",
                "RateLimit-Policy",
                "Retry-After",
                "X-Model-Version",
                "Inference-Header-Content-Length",  # V2 binary answers
            ],
        )
    # Added last runs first: the request id exists before the body limit can refuse anything.
    # Job uploads stream past the sync limit; their own limit applies as they are spooled.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, exempt=is_job_upload)
    app.add_middleware(RequestContextMiddleware, trusted=parse_trusted(settings.trusted_proxies))
    return app
