"""Pure ASGI middleware: request ids with access logs and request metrics, and the body limit
while streaming."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable

from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.addresses import Network, client_address
from gateway.http.errors import BodyTooLarge, error_body, request_id_var
from gateway.http.shapes import error_shape_var, shape_of_path
from gateway.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from kernel.logs import log_fields

logger = logging.getLogger("gateway.access")

#: After refusing a body by its Content-Length, how much of it is still read and discarded
#: (nginx's lingering close), so that the connection is not reset under a client still sending.
#: Bounded in bytes and in time, unlike nginx's (30 s, any size), because a refusal must stay
#: cheap: a client may announce gigabytes, or a body it never sends, and each refused request
#: may cost no more than reading 1 MiB and holding a connection for 2 s. With what the socket
#: buffers hold besides, that covers a body a few MiB over the limit (3 MiB over 64 KiB, tested
#: in tests/integration/test_body_limit.py), the usual mistake; a client sending far more still
#: sees the reset, the price of the bound. 2 s is the time 1 MiB takes at 4 Mbit/s.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0

#: Longest path written to the access log; the path is the client's, and may be 8 KiB.
LOGGED_PATH_CHARS = 256

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

#: Sent with every response; the API serves JSON only, so nothing may frame or sniff it.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")

#: Methods counted by name; a client may send any token as a method, and labels stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Metric children by label values: `labels()` validates and locks on every call, a dict does not.
_counters: dict[tuple[str, str, int], Counter] = {}
_timers: dict[str, Histogram] = {}


def count_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request under its route template (bounded: the app's routes)."""
    key = (route, method if method in _METHODS else "other", status)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = HTTP_REQUESTS.labels(key[0], key[1], str(status))
    counter.inc()
    timer = _timers.get(route)
    if timer is None:
        timer = _timers[route] = HTTP_REQUEST_SECONDS.labels(route)
    timer.observe(seconds)


class RequestContextMiddleware:
    """Give every request an id (a sane incoming `X-Request-ID` is kept) and its client address
    (`scope["client"]`: the peer, or behind trusted proxies the forwarded client, see
    gateway.http.addresses.py), log it once and count it in the request metrics."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        peer = scope.get("client")
        # The header is looked for only behind trusted proxies: nobody else's counts.
        forwarded = _header(scope, b"x-forwarded-for") if self.trusted else None
        client = client_address(peer[0] if peer else None, forwarded, self.trusted)
        scope["client"] = (client, peer[1] if peer else 0)
        shape_token = error_shape_var.set(shape_of_path(scope["path"]))
        state = scope.setdefault("state", {})
        # The interactive docs load scripts; every other route gets the strict policy.
        csp = [] if scope["path"].startswith("/docs") else [_API_CSP]
        started = time.perf_counter()
        status = 500
        response_started = False
        model: str | None = None
        version: str | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, model, version
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                present = set()
                # Prediction responses name the version that answered (gateway/responses.py).
                for name, value in headers:
                    present.add(name.lower())
                    if name == b"x-model-name":
                        model = value.decode("latin-1")
                    elif name == b"x-model-version":
                        version = value.decode("latin-1")
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS + csp)
                for name, value in (state.get("response_headers") or {}).items():
                    key = name.lower().encode()
                    if key not in present:  # the route's own header wins
                        headers.append((key, value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away before its body arrived: nobody to answer (logged as 499,
            # nginx's "client closed request"), and no server error.
            status = 499
        except Exception:
            # Answered here, while the request id is still known, so the client can quote it.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if response_started:
                raise
            await _send_error(
                send_with_id, 500, "internal", "the request failed; quote the request id"
            )
        finally:
            seconds = time.perf_counter() - started
            # Routing stores the matched route in the scope; its path is the template.
            route = getattr(scope.get("route"), "path", None) or "other"
            count_request(route, scope["method"], status, seconds)
            log_fields(
                logger,
                "request",
                {
                    "method": scope["method"][:16],
                    "path": _capped(scope["path"]),
                    "client": client,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "api_key_id": state.get("api_key_id"),
                    "owner": state.get("owner"),
                    "model": model,
                    "model_version": version,
                },
            )
            request_id_var.reset(token)
            error_shape_var.reset(shape_token)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes`: at once from Content-Length, else while they stream in.

    A body refused by its Content-Length is answered before it is read, then read and discarded
    (at most LINGER_BYTES, for at most LINGER_SECONDS) before the connection closes: closing a
    socket with unread bytes makes the kernel send a reset, and a client that sends its whole
    body before reading (Python's http.client, many others) would see that reset instead of the
    413. Clients that read while they send see the 413 at once all the same.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, exempt: Callable[[Scope], bool] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            # The response is left open (more_body) while the body is discarded: an ASGI server
            # answers `receive` with a disconnect once the response is complete, and uvicorn
            # closes a `Connection: close` connection as soon as it is. The client has the whole
            # 413 already, since its Content-Length is sent.
            await _send_error(
                send,
                413,
                "body_too_large",
                f"the body exceeds {self.max_bytes} bytes",
                more_body=True,
            )
            await _discard_body(receive, LINGER_BYTES, LINGER_SECONDS)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(f"the body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _discard_body(receive: Receive, max_bytes: int, seconds: float) -> None:
    """Read and drop the request body until it ends, or `max_bytes` or `seconds` are spent."""
    discarded = 0
    try:
        async with asyncio.timeout(seconds):
            while discarded < max_bytes:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                discarded += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return  # a slow or silent client: the connection is closed with the body unread


async def _send_error(
    send: Send, status: int, code: str, message: str, *, more_body: bool = False
) -> None:
    status, body = error_body(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": more_body})


def _capped(path: str) -> str:
    """A path as logged: at most LOGGED_PATH_CHARS, marked when cut (a client chooses it)."""
    return path if len(path) <= LOGGED_PATH_CHARS else path[:LOGGED_PATH_CHARS] + "...(cut)"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
