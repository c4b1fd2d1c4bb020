"""`GET /v1/models` and `GET /v1/models/{model}`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from gateway.deps import ReadKey, StateDep
from gateway.responses import json_response

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(state: StateDep, key: ReadKey) -> Response:
    """Every configured model: alias, versions served, signature, classes, metrics, runtime."""
    return json_response({"models": [state.models.describe(n) for n in state.models.specs]})


@router.get("/v1/models/{model}")
async def get_model(model: str, state: StateDep, key: ReadKey) -> Response:
    """One model; `name@alias` also loads that alias's version and names it in `requested`."""
    spec = state.models.spec_of(model)
    alias = model.partition("@")[2]
    body = state.models.describe(spec.name)
    if alias and alias != spec.alias:
        loaded = await state.models.resolve(model)  # loads that alias's version, or 404s
        body = {**state.models.describe(spec.name), "requested": {alias: loaded.version}}
    return json_response(body)
