"""Error shapes: each protocol answers its errors in its own body, from the same code table.

Modelgate's own routes (`/v1`, the legacy API, jobs, admin) answer the envelope
`{"error": {"code", "message", "request_id"}}`. The Open Inference Protocol V2 (`/v2/...`)
answers `{"error": "message"}`, as KServe and Triton do; MLflow's scoring protocol
(`/invocations`, `/ping`, `/version`, `/endpoints/{m}/invocations`,
`/v1/models/{m}/invocations`) answers `{"error_code", "message"}`, as MLflow's server does.
Both standard protocols answer a refused value with 400 where Modelgate's own API says 422:
their clients know 400 for every bad request. Messages never echo a value a client sent.

The shape is chosen from the path alone, before any route runs, so the refusals of the
middleware (an oversized body, an unhandled error) come in the protocol's shape too.
"""

from __future__ import annotations

import contextvars

import orjson

MODELGATE = "modelgate"
V2 = "v2"
MLFLOW = "mlflow"

#: The shape of the request now being answered (set by the request middleware).
error_shape_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "error_shape", default=MODELGATE
)

_MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/version"})

#: MLflow's `ErrorCode` names (mlflow/protos/databricks.proto) for each HTTP status.
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
    409: "RESOURCE_CONFLICT",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "TEMPORARILY_UNAVAILABLE",
}


def shape_of_path(path: str) -> str:
    """The error shape of a request path."""
    if path.startswith("/v2/") or path == "/v2":
        return V2
    if (
        path in _MLFLOW_PATHS
        or path.startswith("/endpoints/")
        or (path.startswith("/v1/models/") and path.endswith("/invocations"))
    ):
        return MLFLOW
    return MODELGATE


def shaped_error(
    shape: str, status: int, code: str, message: str, request_id: str
) -> tuple[int, bytes]:
    """The status and body of an error in `shape`; `code` is Modelgate's (kernel.errors)."""
    if shape == V2:
        return (400 if status == 422 else status), orjson.dumps({"error": message})
    if shape == MLFLOW:
        status = 400 if status == 422 else status
        error_code = MLFLOW_ERROR_CODES.get(status, "INTERNAL_ERROR")
        return status, orjson.dumps({"error_code": error_code, "message": message})
    body = {"error": {"code": code, "message": message, "request_id": request_id}}
    return status, orjson.dumps(body)
