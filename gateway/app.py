"""The gateway's app factory and lifespan: everything is built here, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from gateway.errors import install_error_handlers
from gateway.middleware import BodyLimitMiddleware, RequestContextMiddleware
from gateway.predict import Predictor
from gateway.routes import health, legacy, models, predict
from gateway.serving import ModelManager
from gateway.settings import GatewaySettings
from gateway.specs import parse_specs
from gateway.state import GatewayState
from registry.client import Registry, configure_mlflow_http

logger = logging.getLogger(__name__)


def _redis(url: str, timeout: float) -> Redis:
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def create_app(settings: GatewaySettings, registry: Registry | None = None) -> FastAPI:
    """Build the gateway; `registry` may be given by tests, else it is made from settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_mlflow_http(settings)
        manager = ModelManager(
            parse_specs(settings.models),
            registry or Registry(settings.mlflow_tracking_uri),
            refresh_seconds=settings.refresh_seconds,
            retry_seconds=settings.model_load_retry_seconds,
            cache_size=settings.version_cache_size,
            work_dir=Path(settings.model_dir) if settings.model_dir else None,
            allow_pickle=settings.allow_pickle,
        )
        timeout = settings.redis_timeout_seconds
        state = GatewayState(
            settings=settings,
            models=manager,
            predictor=Predictor(settings.predict_threads, settings.max_pending_predictions),
            redis=_redis(settings.redis_url, timeout),
            cache=(
                _redis(settings.cache_url, timeout)
                if settings.cache_url and settings.cache_url != settings.redis_url
                else None
            ),
            http=httpx.AsyncClient(timeout=max(timeout, 1.0)),
        )
        app.state.gateway = state
        manager.start()  # loads in the background: the gateway is alive before it is ready
        logger.info("gateway started", extra={"models": settings.models})
        try:
            yield
        finally:
            await manager.stop()
            state.predictor.close()
            await state.redis.aclose()
            if state.cache is not None:
                await state.cache.aclose()
            await state.http.aclose()

    docs = settings.enable_docs
    app = FastAPI(
        title="Modelgate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    for module in (health, legacy, models, predict):
        app.include_router(module.router)
    # Added last runs first: the request id exists before the body limit can refuse anything.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
