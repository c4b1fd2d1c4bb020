"""`GET /v1/models` and `GET /v1/models/{model}`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from gateway.deps import ReadKey, StateDep
from gateway.routes.responses import json_response
from registry.errors import ModelNotFound

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(state: StateDep, key: ReadKey) -> Response:
    """Every configured model: alias, versions served, signature, classes, metrics, runtime."""
    return json_response({"models": [state.models.describe(n) for n in state.models.specs]})


@router.get("/v1/models/{model}")
async def get_model(model: str, state: StateDep, key: ReadKey) -> Response:
    """One model; `name@alias` also loads and reports the version that alias points to."""
    name, _, alias = model.partition("@")
    spec = state.models.specs.get(name)
    if spec is None:
        raise ModelNotFound(f"model '{name}' is not served here")
    if alias and alias != spec.alias:
        await state.models.resolve(model)  # loads that alias's version, or 404s
    return json_response(state.models.describe(name))
