"""The legacy API: the hand-written app that users run today, kept as it was
(docs/legacy-api.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import ReadKey, StateDep, authorize
from gateway.http.payload import read_json
from gateway.protocols.calls import make_call
from gateway.protocols.dispatch import HotRoute
from gateway.responses import json_response
from gateway.state import GatewayState
from kernel.errors import InvalidInput

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


def legacy_rows(body: Any) -> Any:
    """The rows of the legacy `{"features": [[...], ...]}` (docs/legacy-api.md)."""
    if not isinstance(body, dict) or "features" not in body:
        raise InvalidInput("the body must be a JSON object with 'features', a list of rows")
    return body["features"]


@router.post("/predict", openapi_extra=_BODY_DOC)
async def predict(request: Request) -> Response:
    """`{"features": [[...]]}` in, `{"predictions", "probabilities"}` out, default model."""
    key = await authorize(request, "predict", "predict")  # the hot path: no Depends (deps.py)
    state: GatewayState = request.app.state.gateway
    rows = legacy_rows(await read_json(request, missing_type_is_json=True))
    call = make_call(request, key, "legacy", state.models.default_name, "instances", rows, None)
    answer = await state.plane.predict(call)
    return json_response(
        {"predictions": answer.prediction.labels, "probabilities": answer.prediction.probabilities},
        model=answer.model,
        cache=answer.cache,
    )


#: Answered by the fast dispatch (protocols/dispatch.py).
HOT_ROUTES = (HotRoute("/predict", predict),)


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
