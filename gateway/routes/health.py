"""`/healthz` (alive) and `/readyz` (models loaded or failed for good, not draining; failed
versions and dependencies reported)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import StateDep
from gateway.health import Drain, dependency_report
from gateway.responses import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is alive; nothing else is checked."""
    return json_response({"status": "alive"})


@router.get("/readyz")
async def readyz(request: Request, state: StateDep) -> Response:
    """200 once every served model that can load is loaded and the API keys are, until a stop
    signal starts the drain. Versions refused for a lasting reason (listed in `failed`, with
    their reasons) and models missing from the registry while others serve do not hold it;
    outages are reported only."""
    models = state.models
    drain: Drain = request.app.state.drain
    loaded = models.ready and state.keys.loaded_at is not None
    ready = loaded and not drain.draining
    status = "draining" if drain.draining else "ready" if loaded else "loading"
    report = {
        "status": status,
        **models.report(),
        "keys": {"loaded": state.keys.loaded_at is not None, "loaded_at": state.keys.loaded_at},
        "dependencies": await dependency_report(
            state.redis, state.cache_redis, state.http, state.settings.mlflow_tracking_uri
        ),
    }
    return json_response(report, status=200 if ready else 503)
