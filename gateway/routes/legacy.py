"""The API of the hand-written app that users run today (SEED.md), kept as it was."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import ReadKey, StateDep, authorize
from gateway.payload import read_json
from gateway.predict import legacy_rows, serve
from gateway.routes.responses import json_response
from gateway.state import GatewayState

router = APIRouter(tags=["compatible"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["features"],
                    "properties": {
                        "features": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number"}},
                        }
                    },
                }
            }
        },
    }
}


@router.post("/predict", openapi_extra=_BODY_DOC)
async def predict(request: Request) -> Response:
    """`{"features": [[...]]}` in, `{"predictions", "probabilities"}` out, default model."""
    await authorize(request, "predict", "predict")  # the hot path: no Depends (see deps.py)
    state: GatewayState = request.app.state.gateway
    rows = legacy_rows(await read_json(request, missing_type_is_json=True))
    loaded, result, cache = await serve(state, state.models.default_name, "instances", rows, None)
    return json_response(
        {"predictions": result.labels, "probabilities": result.probabilities},
        model=loaded,
        cache=cache,
    )


@router.get("/health")
async def health(state: StateDep) -> Response:
    """`{"status": "healthy", "model_loaded": true}` once the default model is loaded."""
    if state.models.default_name in state.models.current:
        return json_response({"status": "healthy", "model_loaded": True})
    return json_response({"status": "unhealthy", "model_loaded": False}, status=503)


@router.get("/model-info")
async def model_info(state: StateDep, key: ReadKey) -> Response:
    """Type, feature and class counts, name and version of the default model."""
    model = state.models.default()
    classes = model.classes
    return json_response(
        {
            "model_type": model.model_type,
            "n_features": len(model.signature.features),
            "n_classes": len(classes) if classes is not None else None,
            "name": model.name,
            "version": model.version,
        },
        model=model,
    )
