"""The client's protocol without I/O, shared by `Client` and `AsyncClient`.

Every operation is a *plan*: a generator that yields steps, `Send(call)` (the driver answers
with the `httpx.Response`, or with the `httpx.TransportError` it got instead) and
`Sleep(seconds)`, and returns the operation's result. Requests, retries, error mapping and
answer parsing all live in plans; a driver only sends and sleeps, with or without `await`.
A driver reads the body of every answer before handing it over, except the successful answer
of a `stream` call, which the caller reads and closes.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, TypeVar, Union
from urllib.parse import quote

import httpx

from modelgate_client._version import __version__
from modelgate_client.errors import BadResponse, ConnectionFailed, error_from_answer
from modelgate_client.retry import Retry

T = TypeVar("T")
USER_AGENT = f"modelgate-client/{__version__}"
JSON_TYPE = "application/json"
#: Methods whose calls may be repeated after a connection error without doing anything twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})


class Body(Protocol):
    """An upload that can be sent again from its start (each `blocks()` is a new pass)."""

    content_type: str
    size: Optional[int]

    def blocks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Call:
    """One request as the plans describe it; `path` is relative to the gateway URL."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content: Union[bytes, Body, None] = None
    #: Hand over the successful answer unread (the caller streams its body).
    stream: bool = False
    timeout: Optional[httpx.Timeout] = None
    #: Safe to send again after a connection error (None: by the method).
    idempotent: Optional[bool] = None
    #: Error codes that are retried with the backoff, besides the policy's statuses.
    retry_codes: frozenset[str] = frozenset()

    @property
    def repeatable(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in IDEMPOTENT_METHODS


#: Error codes never retried whatever their status: the gateway's answer is lasting.
NOT_RETRIED = frozenset({"model_unavailable"})


@dataclass(frozen=True)
class Send:
    call: Call


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Union[Send, Sleep]
#: A plan returning T: it yields steps and is sent each step's outcome.
Plan = Generator[Step, Any, T]


@dataclass(frozen=True)
class Target:
    """Where the client sends its requests and how it retries them."""

    url: str
    url_source: str
    retry: Retry


def base_headers(api_key: Optional[str], extra: Optional[Mapping[str, str]] = None) -> dict:
    headers = {"User-Agent": USER_AGENT, "Accept": JSON_TYPE}
    if api_key:
        headers["X-API-Key"] = api_key
    headers.update(extra or {})
    return headers


def _plain(value: Any) -> Any:
    """numpy and pandas scalars (anything with `.item()`) as plain Python values."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} values cannot be sent as JSON")


def encode_json(document: Any) -> bytes:
    """Compact JSON; numpy scalars become numbers, and NaN or infinity is a ValueError."""
    try:
        return json.dumps(document, default=_plain, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ValueError(
            "NaN and infinite values cannot be sent as JSON; drop or fill them first"
        ) from None


def json_call(method: str, path: str, document: Any, **options: Any) -> Call:
    headers = {"Content-Type": JSON_TYPE, **options.pop("headers", {})}
    return Call(method, path, headers=headers, content=encode_json(document), **options)


def model_path(model: str, tail: str = "") -> str:
    return f"/v1/models/{quote(model, safe='@')}{tail}"


def job_path(job_id: str, tail: str = "") -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}{tail}"


def no_answer(target: Target, exc: BaseException, while_reading: bool = False) -> ConnectionFailed:
    """The error of a request that got no (whole) answer."""
    where = f"{target.url} (from {target.url_source})"
    if isinstance(exc, httpx.TimeoutException):
        code, message = "gateway_timeout", f"{where} did not answer in time"
    elif while_reading:
        code, message = "gateway_unreachable", f"lost {where} while reading its answer"
    else:
        code, message = "gateway_unreachable", f"cannot reach {where}"
    error = ConnectionFailed(
        f"{message}: {type(exc).__name__}", url=target.url, source=target.url_source
    )
    error.code = code
    return error


def exchange(call: Call, target: Target) -> Plan[httpx.Response]:
    """Send `call` until it succeeds (2xx/3xx answer), retrying per the target's policy;
    raises the typed error of the last failure."""
    attempt = 1
    while True:
        outcome = yield Send(call)
        if isinstance(outcome, BaseException):
            hopeless = isinstance(outcome, httpx.UnsupportedProtocol)  # not a URL to retry
            if call.repeatable and not hopeless and target.retry.can_retry(attempt):
                yield Sleep(target.retry.backoff_delay(attempt))
                attempt += 1
                continue
            raise no_answer(target, outcome) from outcome
        response: httpx.Response = outcome
        if response.status_code < 400:
            return response
        error = error_from_answer(
            response.status_code, response.headers, response.content, response.reason_phrase
        )
        # A lasting refusal (a version that cannot load here) comes without Retry-After:
        # sending it again cannot help.
        by_status = error.status in target.retry.statuses and error.code not in NOT_RETRIED
        if not (by_status or error.code in call.retry_codes) or not target.retry.can_retry(attempt):
            raise error
        yield Sleep(target.retry.delay(attempt, error.retry_after if by_status else None))
        attempt += 1


def decode_json(response: httpx.Response) -> Any:
    """The JSON of a successful answer (None for an empty body)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        raise BadResponse(
            "the gateway's answer is not JSON",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer."""
    document = decode_json(response)
    if not isinstance(document, dict):
        raise BadResponse(
            "the gateway's answer is not a JSON object",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        )
    return document


def request_json(call: Call, target: Target) -> Plan[dict[str, Any]]:
    """`exchange`, then the answer's JSON object."""
    response = yield from exchange(call, target)
    return json_object(response)


def request_any(call: Call, target: Target) -> Plan[Any]:
    """`exchange`, then the answer's JSON (any value; None for an empty body)."""
    response = yield from exchange(call, target)
    return decode_json(response)
