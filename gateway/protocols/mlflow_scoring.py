"""MLflow's scoring protocol: what `mlflow models serve` answers, over the one data plane.

`POST /invocations` (the default model), `POST /v1/models/{model}/invocations` and
`POST /endpoints/{model}/invocations` (where `mlflow.deployments.get_deploy_client(url)
.predict(endpoint=model, inputs=...)` posts, with `MLFLOW_TRACKING_TOKEN` as its Bearer key)
take every body MLflow's server takes (mlflow_bodies.py) and answer `{"predictions": [...]}`,
as it renders them; they count as `predict` for rate limits. `GET /ping` and `GET /version`
answer as MLflow's server does, without a key. Errors are `{"error_code", "message"}`
(gateway/http/shapes.py), with MLflow's status class; they never echo a value.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import authorize
from gateway.health import Drain
from gateway.http.errors import ModelNotReady
from gateway.http.payload import INLINE_PARSE_BYTES
from gateway.protocols.calls import make_call
from gateway.protocols.dispatch import HotRoute
from gateway.protocols.mlflow_bodies import MEDIA_TYPES, Body, body_format, parse_body
from gateway.responses import json_response
from gateway.state import GatewayState
from kernel.errors import InvalidInput, ModelNotFound
from registry.model import LoadedModel, Prediction
from runtime.base import CLASS_1_SCORE, LABEL_COLUMN, SCORES

router = APIRouter(tags=["mlflow scoring"])

PYFUNC = "python_function"

_ANY: dict[str, Any] = {}
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"MLflow's scoring bodies, as {MEDIA_TYPES}.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "Exactly one of dataframe_split, dataframe_records, "
                    "instances or inputs; params is optional.",
                    "properties": {
                        "dataframe_split": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string"}},
                                "data": {"type": "array", "items": {"type": "array"}},
                                "index": {"type": "array"},
                            },
                        },
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                        "instances": _ANY,
                        "inputs": _ANY,
                        "params": {"type": "object"},
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


async def _invoke(request: Request, model: str | None) -> Response:
    key = await authorize(request, "predict", "predict")  # the hot path: no Depends (deps.py)
    state = _state(request)
    form = body_format(request.headers.get("content-type"))
    name = model if model is not None else state.models.default_name
    body = await request.body()
    loaded = await state.models.resolve(name)
    limit = state.plane.max_rows
    # Tables are parsed in a thread (CSV costs far more per byte than JSON), as is large JSON.
    if form != "json" or len(body) > INLINE_PARSE_BYTES:
        parsed = await asyncio.to_thread(parse_body, form, body, loaded.signature, limit)
    else:
        parsed = parse_body(form, body, loaded.signature, limit)
    check_params(loaded, parsed)
    # Pinned to the version whose signature ordered the rows, even if another was swapped in
    # meanwhile.
    call = make_call(request, key, "mlflow", name, parsed.kind, parsed.rows, loaded.version)
    answer = await state.plane.predict(call)
    return json_response(
        {"predictions": predictions(answer.model, answered(answer.model, answer.prediction))},
        model=answer.model,
        cache=answer.cache,
    )


def check_params(model: LoadedModel, body: Body) -> None:
    """`params` are ignored, as MLflow's server ignores them for a model whose signature
    declares none; a pyfunc model that declares some is refused them, since Modelgate does not
    pass params to a model (MLflow would, and its answer could differ)."""
    if body.params is None or body.params == {} or params_schema(model) is None:
        return
    raise InvalidInput("this model declares params, which Modelgate does not pass to models")


def _metadata(model: LoadedModel) -> Any:
    return getattr(model.estimator, "metadata", None) if model.flavor == PYFUNC else None


def params_schema(model: LoadedModel) -> Any:
    metadata = _metadata(model)
    return metadata.get_params_schema() if metadata is not None else None


def output_columns(model: LoadedModel) -> tuple[list[str], bool] | None:
    """The names of a pyfunc model's outputs, from its signature, and whether they are tensors
    (a dict of columns: MLflow infers named tensors for one) rather than the columns of a
    DataFrame (or a named Series); None for every other answer (a list of values)."""
    metadata = _metadata(model)
    schema = metadata.get_output_schema() if metadata is not None else None
    if schema is None or not schema.has_input_names():
        return None
    return [str(name) for name in schema.input_names()], schema.is_tensor_spec()


def answered(model: LoadedModel, prediction: Prediction) -> list[Any]:
    """What MLflow's flavor answers per row (NativeRuntime.mlflow_output): the labels, each
    label in a list of one, or a bare Booster's scores (its probabilities, unrounded). When a
    twin answered, or the cache held rows from before scores were kept, the scores are
    rebuilt from the probabilities, rounded to 5 decimals."""
    output = model.native.mlflow_output
    if output == LABEL_COLUMN:
        return [[label] for label in prediction.labels]
    if output not in SCORES:
        return prediction.labels
    if prediction.scores is not None:
        return prediction.scores
    proba = prediction.probabilities or []
    return [row[1] for row in proba] if output == CLASS_1_SCORE else proba


def predictions(model: LoadedModel, labels: list[Any]) -> Any:
    """The answer's `predictions` as MLflow renders them (its `predictions_to_json`): the
    values; for a pyfunc whose output is a DataFrame, one record per row (pandas' `records`
    orient); for one whose output is a dict of columns, that dict. A pyfunc's row that is
    already a record (a dict) stays one."""
    outputs = output_columns(model)
    if outputs is None:
        return labels
    names, tensors = outputs
    if tensors:
        if labels and all(type(value) is dict for value in labels):
            return {name: [value.get(name) for value in labels] for name in labels[0]}
        return labels
    if len(names) == 1:
        only = names[0]
        return [value if type(value) is dict else {only: value} for value in labels]
    return [
        dict(zip(names, value, strict=True))
        if isinstance(value, list) and len(value) == len(names)
        else value
        for value in labels
    ]


@router.post("/invocations", openapi_extra=_BODY_DOC)
async def invocations(request: Request) -> Response:
    """Predict with the default model (MODELGATE_DEFAULT_MODEL), as `mlflow models serve`."""
    return await _invoke(request, None)


@router.post("/v1/models/{model}/invocations", openapi_extra=_BODY_DOC)
async def model_invocations(model: str, request: Request) -> Response:
    """Predict with `model` (`name` or `name@alias`), in MLflow's scoring protocol."""
    return await _invoke(request, model)


@router.post("/endpoints/{model}/invocations", openapi_extra=_BODY_DOC)
async def endpoint_invocations(model: str, request: Request) -> Response:
    """Where MLflow's deployments client posts `predict(endpoint=model, inputs=...)`."""
    return await _invoke(request, model)


#: Answered by the fast dispatch (protocols/dispatch.py).
HOT_ROUTES = (
    HotRoute("/invocations", invocations),
    HotRoute("/v1/models/{model}/invocations", model_invocations),
    HotRoute("/endpoints/{model}/invocations", endpoint_invocations),
)


# Not in /openapi.json: their bodies are MLflow's, labelled JSON without being JSON.
@router.get("/ping", include_in_schema=False)
async def ping(request: Request) -> Response:
    """200 with a newline (MLflow's body) once the default model is loaded, else 503."""
    state = _state(request)
    drain: Drain = request.app.state.drain
    if drain.draining:
        raise ModelNotReady("the gateway is draining")
    try:
        state.models.default()
    except ModelNotFound:  # no default model (patterns only): every model's readiness
        if not state.models.ready:
            raise ModelNotReady("the served models are not loaded yet") from None
    return Response(b"\n", 200, media_type="application/json")


@router.get("/version", include_in_schema=False)
async def version() -> Response:
    """The version of MLflow whose protocol this is, as MLflow's server sends it (bare)."""
    return Response(mlflow_version(), 200, media_type="application/json")


@functools.cache
def mlflow_version() -> str:
    from mlflow.version import VERSION

    return str(VERSION)
