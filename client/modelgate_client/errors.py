"""Typed errors: one class per HTTP status the gateway answers, and the client's own.

ModelgateError                 .code .status .message .request_id .retry_after
├── BadRequest                 400  (invalid_json, empty_body)
├── AuthenticationError        401  (unauthorized)
├── PermissionDenied           403  (forbidden)
├── NotFound                   404  (model_not_found, job_not_found, ...)
├── Conflict                   409  (job_not_finished, idempotency_in_progress)
├── Gone                       410  (job_results_deleted)
├── PayloadTooLarge            413  (too_many_rows, body_too_large)
├── UnsupportedMediaType       415
├── InvalidInput               422  (invalid_input, unknown_field, idempotency_conflict)
├── RateLimited                429  (rate_limited, job_limit_exceeded)
├── ServerError                5xx
│   └── Unavailable            503  (overloaded, model_not_ready, queue_unavailable, ...)
├── ConnectionFailed           no answer (status None)
├── BadResponse                an answer that is not the JSON expected
├── UnsupportedFormat          a file suffix or format the client cannot send (ValueError)
└── JobError                   .job: a job that did not succeed (`jobs.wait`)
    ├── JobFailed
    ├── JobCancelled
    └── WaitTimeout
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from modelgate_client.jobs import Job


class ModelgateError(Exception):
    """Any error of the client; `code` is the gateway's stable error code."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.retry_after is not None:
            details.append(f"retry after {self.retry_after:g} s")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        tail = f" ({', '.join(details)})" if details else ""
        return f"{self.code}: {self.message}{tail}"


class BadRequest(ModelgateError):
    default_code = "http_400"


class AuthenticationError(ModelgateError):
    default_code = "unauthorized"


class PermissionDenied(ModelgateError):
    default_code = "forbidden"


class NotFound(ModelgateError):
    default_code = "not_found"


class Conflict(ModelgateError):
    default_code = "http_409"


class Gone(ModelgateError):
    default_code = "http_410"


class PayloadTooLarge(ModelgateError):
    default_code = "http_413"


class UnsupportedMediaType(ModelgateError):
    default_code = "unsupported_media_type"


class InvalidInput(ModelgateError):
    default_code = "invalid_input"


class RateLimited(ModelgateError):
    default_code = "rate_limited"


class ServerError(ModelgateError):
    default_code = "http_500"


class Unavailable(ServerError):
    default_code = "http_503"


class ConnectionFailed(ModelgateError):
    """No answer: the gateway could not be reached, or did not answer in time."""

    default_code = "gateway_unreachable"

    def __init__(self, message: str, *, url: str, source: str) -> None:
        super().__init__(message)
        self.url = url
        self.source = source


class BadResponse(ModelgateError):
    """The gateway answered, but not with the JSON this client expects."""

    default_code = "bad_response"


class UnsupportedFormat(ModelgateError, ValueError):
    """A file suffix or format that the client cannot send or receive."""

    default_code = "unsupported_format"


class JobError(ModelgateError):
    """A job that did not succeed; `job` is its last status."""

    default_code = "job_error"

    def __init__(self, message: str, job: Job, *, code: Optional[str] = None) -> None:
        super().__init__(message, code=code)
        self.job = job


class JobFailed(JobError):
    """The job failed; `code` and `message` are the job's error."""

    default_code = "job_failed"


class JobCancelled(JobError):
    default_code = "job_cancelled"


class WaitTimeout(JobError):
    """`wait` gave up before the job finished; the job goes on."""

    default_code = "wait_timeout"


#: The class of each HTTP status the gateway answers with.
BY_STATUS: dict[int, type[ModelgateError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: RateLimited,
    503: Unavailable,
}


def error_class(status: int) -> type[ModelgateError]:
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ServerError if status >= 500 else ModelgateError


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds of a `Retry-After` header: a number of seconds or an HTTP date (None if
    absent or unreadable)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _envelope(body: bytes) -> Optional[Mapping[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"]:
        return error
    return None


#: Said after the gateway's message when a predict call has more rows than it takes at once.
USE_JOBS_HINT = "send this many rows as a batch job: client.jobs.submit(model, rows)"


def error_from_answer(
    status: int, headers: Mapping[str, str], body: bytes, reason: str = ""
) -> ModelgateError:
    """The typed error of an error answer: the gateway's envelope `{"error": {"code",
    "message", "request_id"}}`, or, for any other body, code `http_<status>`."""
    envelope = _envelope(body)
    if envelope is not None:
        code = str(envelope["code"])
        message = str(envelope.get("message") or reason or "request failed")
        body_request_id = envelope.get("request_id")
    else:
        code, message, body_request_id = f"http_{status}", reason or "request failed", None
    if code == "too_many_rows" and USE_JOBS_HINT not in message:
        message = f"{message} ({USE_JOBS_HINT})"
    request_id = headers.get("x-request-id") or (
        str(body_request_id) if body_request_id not in (None, "", "-") else None
    )
    retry_after = parse_retry_after(headers.get("retry-after"))
    return error_class(status)(
        message, code=code, status=status, request_id=request_id, retry_after=retry_after
    )
