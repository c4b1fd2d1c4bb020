"""The Open Inference Protocol V2 over REST (KServe's and Triton's `/v2` API).

Probes (`/v2`, `/v2/health/live`, `/v2/health/ready`) need no key; model metadata, model
ready and the repository index count as `reads`, infer as `predict`. Tensors are read and
written by `v2_tensors` (shared with gRPC) and `v2_bodies` (JSON and the binary extension).
Errors are `{"error": "..."}` (gateway/http/shapes.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import authorize
from gateway.health import Drain
from gateway.http.errors import EmptyBody, UnsupportedMediaType
from gateway.http.media import JSON, essence, is_json_media_type
from gateway.protocols.calls import make_call
from gateway.protocols.dispatch import HotRoute
from gateway.protocols.v1 import MAX_VERSION
from gateway.protocols.v2_bodies import HEADER_LENGTH, parse_infer, render_infer
from gateway.protocols.v2_outputs import model_metadata, output_tensors
from gateway.protocols.v2_ready import ready_version
from gateway.protocols.v2_tensors import rows_of
from gateway.responses import json_response, model_headers
from gateway.state import GatewayState
from kernel.errors import VersionNotFound
from registry.model import LoadedModel

router = APIRouter(tags=["open inference protocol v2"])

SERVER_NAME = "modelgate"
SERVER_VERSION = "0.1.0"
#: The V2 extensions served (Triton's names, which tritonclient's server metadata shows).
EXTENSIONS = ["binary_tensor_data"]
_BODY_TYPES = frozenset({"application/octet-stream"})


def parse_path_version(raw: str | None) -> int | None:
    """A version from the path: digits only; anything else, or one past MLflow's range, is no
    version there is (404)."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or int(raw) > MAX_VERSION:
        raise VersionNotFound("no such version")
    return int(raw)


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


@router.get("/v2")
async def server_metadata() -> Response:
    """Server metadata: name, version and the extensions served."""
    return json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})


@router.get("/v2/health/live")
async def live() -> Response:
    """`{"live": true}` while the process runs."""
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    """`{"ready": true}` (200) when /readyz would be 200, else `{"ready": false}` (503)."""
    state = _state(request)
    drain: Drain = request.app.state.drain
    is_ready = state.models.ready and state.keys.loaded_at is not None and not drain.draining
    return json_response({"ready": is_ready}, status=200 if is_ready else 503)


async def _model(request: Request, model: str, version: str | None) -> LoadedModel:
    await authorize(request, "predict", "reads")
    return await _state(request).models.resolve(model, parse_path_version(version))


def _versions(state: GatewayState, model: LoadedModel) -> list[int]:
    return [m.version for m in state.models.loaded_versions(model.name)] or [model.version]


@router.get("/v2/models/{model}")
async def metadata(model: str, request: Request) -> Response:
    """Model metadata: versions, platform, inputs and the outputs this version gives."""
    loaded = await _model(request, model, None)
    body = model_metadata(loaded, _versions(_state(request), loaded))
    return json_response(body, model=loaded)


@router.get("/v2/models/{model}/versions/{version}")
async def version_metadata(model: str, version: str, request: Request) -> Response:
    """Metadata of one version (loaded on demand, as a pinned prediction would)."""
    loaded = await _model(request, model, version)
    return json_response(model_metadata(loaded, [loaded.version]), model=loaded)


async def _ready(request: Request, model: str, version: str | None) -> Response:
    await authorize(request, "predict", "reads")
    ready = await ready_version(_state(request).models, model, parse_path_version(version))
    # The protocol: 200 means ready, a 4xx not ready.
    if ready is None:
        return json_response({"error": "the model is not ready"}, status=400)
    return json_response({"name": model.partition("@")[0], "ready": True})


@router.get("/v2/models/{model}/ready")
async def model_ready(model: str, request: Request) -> Response:
    """200 when the model's served version is loaded, 400 when not (yet)."""
    return await _ready(request, model, None)


@router.get("/v2/models/{model}/versions/{version}/ready")
async def version_ready(model: str, version: str, request: Request) -> Response:
    """200 when that version is loaded here, 400 when not."""
    return await _ready(request, model, version)


@router.post("/v2/repository/index")
async def repository_index(request: Request) -> Response:
    """Every served model with its version and state (read-only: no load or unload here)."""
    await authorize(request, "predict", "reads")
    models = _state(request).models
    index: list[dict[str, Any]] = []
    for name in models.specs:
        serving = models.current.get(name)
        entry: dict[str, Any] = {"name": name, "state": "READY" if serving else "UNAVAILABLE"}
        if serving is not None:
            entry["version"] = str(serving.version)
        else:
            entry["reason"] = models.last_error.get(name) or "not loaded yet"
        index.append(entry)
    return json_response(index)


_INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"type": "object", "required": ["inputs"]}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "A JSON header of Inference-Header-Content-Length bytes, then "
                "the binary tensors",
            },
        },
    }
}


async def _infer(request: Request, model: str, version: str | None) -> Response:
    key = await authorize(request, "predict", "predict")  # the hot path: no Depends (deps.py)
    state = _state(request)
    pinned = parse_path_version(version)
    content_type = request.headers.get("content-type")
    header_length = request.headers.get(HEADER_LENGTH)
    # tritonclient sends no Content-Type; a binary body may say octet-stream.
    if content_type is not None and not (
        is_json_media_type(content_type) or essence(content_type) in _BODY_TYPES
    ):
        raise UnsupportedMediaType("send the body as application/json")
    body = await request.body()
    if not body.strip():
        raise EmptyBody("No data provided")
    parsed = parse_infer(body, header_length)
    kind, rows = rows_of(parsed.tensors, parsed.content_type, state.plane.max_rows)
    call = make_call(request, key, "v2", model, kind, rows, pinned)
    answer = await state.plane.predict(call)
    loaded = answer.model
    tensors = output_tensors(loaded, answer.prediction, parsed.outputs)
    payload, split = render_infer(parsed, loaded.name, loaded.version, tensors)
    headers = model_headers(loaded, answer.cache)
    if split is None:
        return Response(payload, 200, headers=headers, media_type=JSON)
    headers[HEADER_LENGTH] = str(split)
    return Response(payload, 200, headers=headers, media_type="application/octet-stream")


@router.post("/v2/models/{model}/infer", openapi_extra=_INFER_DOC)
async def infer(model: str, request: Request) -> Response:
    """Predict with the model's served version (tensors in JSON or binary)."""
    return await _infer(request, model, None)


@router.post("/v2/models/{model}/versions/{version}/infer", openapi_extra=_INFER_DOC)
async def version_infer(model: str, version: str, request: Request) -> Response:
    """Predict with one version of the model."""
    return await _infer(request, model, version)


#: Answered by the fast dispatch (protocols/dispatch.py).
HOT_ROUTES = (
    HotRoute("/v2/models/{model}/infer", infer),
    HotRoute("/v2/models/{model}/versions/{version}/infer", version_infer),
)
