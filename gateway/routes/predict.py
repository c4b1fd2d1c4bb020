"""`POST /v1/models/{model}/predict`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from gateway.deps import authorize
from gateway.payload import read_json
from gateway.predict import serve, v1_request
from gateway.routes.responses import json_response
from gateway.state import GatewayState

router = APIRouter(tags=["predict"])


class PredictRequest(BaseModel):
    """Documentation of the body; it is parsed by `gateway.predict` with stricter rules."""

    instances: list[list[float | int | str | bool]] | None = Field(
        default=None, description="Rows as lists of values in signature order."
    )
    records: list[dict[str, float | int | str | bool]] | None = Field(
        default=None, description="Rows as objects of feature name to value."
    )
    version: int | None = Field(default=None, ge=1, description="Pin a model version.")


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}


@router.post("/v1/models/{model}/predict", openapi_extra=_BODY_DOC)
async def predict(model: str, request: Request) -> Response:
    """Predict rows with `model` (`name` or `name@alias`), optionally pinned to a version."""
    await authorize(request, "predict", "predict")  # the hot path: no Depends (see deps.py)
    state: GatewayState = request.app.state.gateway
    kind, rows, version = v1_request(await read_json(request))
    loaded, result, cache = await serve(state, model, kind, rows, version)
    return json_response(
        {
            "model": loaded.name,
            "version": loaded.version,
            "predictions": result.labels,
            "probabilities": result.probabilities,
            "classes": loaded.classes,
        },
        model=loaded,
        cache=cache,
    )
