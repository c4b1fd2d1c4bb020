"""The one error envelope, and the only place where error codes become HTTP statuses.

ModelgateError (kernel.errors)
├── InvalidInput, RegistryError, ...   from the model side
└── GatewayError
    ├── InvalidJson            invalid_json            400
    ├── EmptyBody              empty_body              400
    ├── UnknownField           unknown_field           422
    ├── TooManyRows            too_many_rows           413
    ├── BodyTooLarge           body_too_large          413
    ├── UnsupportedMediaType   unsupported_media_type  415
    ├── ModelNotReady          model_not_ready         503  (with Retry-After)
    ├── ModelUnavailable       model_unavailable       503  (no Retry-After: a lasting refusal)
    └── Overloaded             overloaded              503
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gateway.http.shapes import error_shape_var, shaped_error
from kernel.errors import ModelgateError

logger = logging.getLogger(__name__)

#: The current request's id, set by the request middleware, read by logs and error bodies.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: Every code a client may see, by status. The codes of base classes that only name a category
#: ("internal", "gateway_error", "registry_error") are left out on purpose: no one status fits
#: their subclasses, so one raised bare is answered as a logged 500 "internal" (see
#: tests/unit/gateway/test_error_codes.py, which also finds any code missing here).
STATUS_BY_CODE = {
    "invalid_json": 400,
    "empty_body": 400,
    "invalid_input": 422,
    "predict_timeout": 504,  # a pyfunc model overran MODELGATE_PYFUNC_TIMEOUT_SECONDS
    "unknown_field": 422,
    "invalid_request": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "ambiguous_credentials": 400,  # two keys in one request: neither is picked
    "rate_limited": 429,
    "auth_throttled": 429,  # too many failed authentications from the client's address
    "rate_limit_unavailable": 503,
    "invalid_key_spec": 422,
    "job_not_found": 404,
    "job_not_finished": 409,
    "job_results_deleted": 410,  # they existed, and are gone for good
    "job_limit_exceeded": 429,
    "idempotency_conflict": 422,
    "idempotency_in_progress": 409,  # the first submission with this key still runs
    "queue_unavailable": 503,
    "model_not_found": 404,
    "alias_not_found": 404,
    "version_not_found": 404,
    "artifact_rejected": 404,
    "alias_history_empty": 409,  # a rollback with no earlier version to go back to
    "not_found": 404,
    "method_not_allowed": 405,
    "too_many_rows": 413,
    "headers_too_large": 431,  # refused by the connection, before the app (gateway/http/edge.py)
    "uri_too_long": 414,
    "header_timeout": 408,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "model_not_ready": 503,
    "model_unavailable": 503,  # the version cannot load here (lasting): retrying will not help
    "overloaded": 503,
    "registry_unavailable": 503,
    "verdict_missing": 503,  # no gateway judged a version in time (raised by the CLI only)
}

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = 1
#: 503s that a retry does not cure: answered without Retry-After.
NOT_RETRYABLE = frozenset({"model_unavailable"})


class GatewayError(ModelgateError):
    code = "gateway_error"


class InvalidJson(GatewayError):
    code = "invalid_json"


class EmptyBody(GatewayError):
    code = "empty_body"


class UnknownField(GatewayError):
    code = "unknown_field"


class TooManyRows(GatewayError):
    code = "too_many_rows"


class BodyTooLarge(GatewayError):
    code = "body_too_large"


class UnsupportedMediaType(GatewayError):
    code = "unsupported_media_type"


class ModelNotReady(GatewayError):
    code = "model_not_ready"


class ModelUnavailable(GatewayError):
    """A served model whose version was refused for a lasting reason (its artifact's digest,
    format, trusted types...), or one past MODELGATE_MAX_SERVED_MODELS: the message says why."""

    code = "model_unavailable"


class Overloaded(GatewayError):
    code = "overloaded"


def error_body(status: int, code: str, message: str) -> tuple[int, bytes]:
    """The status and body of an error, in the shape of the request's protocol (shapes.py)."""
    return shaped_error(error_shape_var.get(), status, code, message, request_id_var.get())


def error_response(
    code: str, message: str, extra: Mapping[str, str] | None = None, status: int | None = None
) -> Response:
    status = status or STATUS_BY_CODE.get(code, 500)
    retry = status == 503 and code not in NOT_RETRYABLE
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry else {}
    headers.update(extra or {})
    status, body = error_body(status, code, message)
    return Response(body, status, headers=headers, media_type="application/json")


def modelgate_error_response(exc: ModelgateError) -> Response:
    """The envelope of a ModelgateError, with its status (and Retry-After on a 503)."""
    if exc.code not in STATUS_BY_CODE:
        logger.error("unmapped error code %s", exc.code)
        return error_response("internal", "the request failed")
    return error_response(exc.code, exc.message, getattr(exc, "headers", None))


async def _modelgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelgateError)
    return modelgate_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response("not_found", "no such route")
    if exc.status_code == 405:
        return error_response(
            "method_not_allowed",
            "method not allowed on this route",
            exc.headers,  # Allow
        )
    return error_response("http_error", "the request was refused", status=exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Name where the problem is, never the value that was sent.
    places = [".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()[:3]]
    return error_response("invalid_request", "invalid request at " + ", ".join(places))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelgateError, _modelgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Unexpected exceptions are answered by RequestContextMiddleware, which knows the request id.
