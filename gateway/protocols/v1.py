"""Modelgate's own API: `POST /v1/models/{model}/predict`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from gateway.deps import authorize
from gateway.http.errors import UnknownField
from gateway.http.payload import read_json
from gateway.protocols.calls import make_call
from gateway.protocols.dispatch import HotRoute
from gateway.responses import json_response
from gateway.state import GatewayState
from kernel.errors import InvalidInput, VersionNotFound

router = APIRouter(tags=["predict"])

_V1_FIELDS = frozenset({"instances", "records", "version"})
#: MLflow versions are 32-bit integers; a larger one cannot exist (and is not sent to MLflow).
MAX_VERSION = 2**31 - 1


class PredictRequest(BaseModel):
    """Documentation of the body; it is parsed by `v1_request` with stricter rules."""

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


def parse_version(body: Mapping[str, Any]) -> int | None:
    """The optional pinned version: a positive integer, or a string of digits."""
    raw = body.get("version")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, float) and raw.is_integer():  # JSON has one number type: 2.0 is 2
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise InvalidInput("'version' must be a positive integer")
    if raw > MAX_VERSION:
        raise VersionNotFound(f"no version {raw}")
    return raw


def v1_request(body: Any) -> tuple[str, Any, int | None]:
    """Split a `/v1/.../predict` body into (kind, rows, version) without checking the rows."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with 'instances' or 'records'")
    unknown = sorted(str(k)[:64] for k in body if k not in _V1_FIELDS)
    if unknown:
        raise UnknownField(f"unknown field(s): {', '.join(unknown[:5])}")
    kinds = [k for k in ("instances", "records") if k in body]
    if len(kinds) != 1:
        raise InvalidInput("give exactly one of 'instances' or 'records'")
    return kinds[0], body[kinds[0]], parse_version(body)


@router.post("/v1/models/{model}/predict", openapi_extra=_BODY_DOC)
async def predict(model: str, request: Request) -> Response:
    """Predict rows with `model` (`name` or `name@alias`), optionally pinned to a version."""
    key = await authorize(request, "predict", "predict")  # the hot path: no Depends (deps.py)
    state: GatewayState = request.app.state.gateway
    kind, rows, version = v1_request(await read_json(request))
    answer = await state.plane.predict(make_call(request, key, "v1", model, kind, rows, version))
    loaded, result = answer.model, answer.prediction
    return json_response(
        {
            "model": loaded.name,
            "version": loaded.version,
            "predictions": result.labels,
            "probabilities": result.probabilities,
            "classes": loaded.classes,
        },
        model=loaded,
        cache=answer.cache,
    )


#: Answered by the fast dispatch (protocols/dispatch.py).
HOT_ROUTES = (HotRoute("/v1/models/{model}/predict", predict),)
