"""Limits on a request before it reaches the app: header sizes, header time, connections.

uvicorn's httptools parser (the fast one; its h11 parser is the only one with a header limit,
and is slower, docs/benchmarks.md) accepts headers of any size and number, and a connection
that sends one header line every few seconds stays open for ever (a slowloris). This protocol
subclass adds, per connection (settings in gateway/settings.py):

- a header line (name and value) over `line_bytes`, more than `headers` lines, or a header
  block over `header_bytes`: 431; a request target over `line_bytes`: 414. The bytes of an
  unfinished header block are counted as they arrive, so no client can make the parser buffer
  more than `header_bytes + line_bytes` plus one socket read;
- headers not complete `header_seconds` after the accept (or after a kept-alive request's
  first byte): 408;
- a request on a connection past `max_connections` open ones: 503 `overloaded` with
  Retry-After, before the app; the connection is closed, which is what relieves the process.

Each refusal is the gateway's JSON error envelope with `Connection: close`, and the
connection is closed once it is written; the body, if any, is not read.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.errors import (
    RETRY_AFTER_SECONDS,
    STATUS_BY_CODE,
    GatewayError,
    Overloaded,
    error_body,
)
from gateway.metrics import CONNECTIONS_REFUSED


@dataclass(frozen=True)
class EdgeLimits:
    line_bytes: int = 8 * 1024
    header_bytes: int = 32 * 1024
    headers: int = 100
    header_seconds: float = 10.0
    max_connections: int = 2048


class HeadersTooLarge(GatewayError):
    code = "headers_too_large"


class UriTooLong(GatewayError):
    code = "uri_too_long"


class HeaderTimeout(GatewayError):
    code = "header_timeout"


class _Refused(Exception):
    """Raised inside a parser callback to stop the parser; the refusal is already recorded."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `limits` (see `with_limits`)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: tuple[int, str, str] | None = None
        self._in_headers = True
        self._unparsed = 0  # bytes fed while the header block is unfinished
        self._header_bytes = 0
        self._header_lines = 0
        self._deadline: asyncio.TimerHandle | None = None

    # -- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the connection is closing, nothing more is parsed
        super().data_received(data)  # a refusal raised in a callback ends in send_400_response
        if self._in_headers and self._refusal is None and not self.transport.is_closing():
            self._unparsed += len(data)
            if self._unparsed > self.limits.header_bytes + self.limits.line_bytes:
                self._refuse(HeadersTooLarge, self._headers_message())

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # the parser stopped because of a refusal: send it
            self._write_refusal()
            return
        super().send_400_response(msg)

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._unparsed = self._header_bytes = self._header_lines = 0
        if self._deadline is None:  # a kept-alive connection's next request
            self._start_deadline()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.line_bytes:
            self._record(UriTooLong, f"the request target exceeds {self.limits.line_bytes} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        limits = self.limits
        if len(name) + len(value) + 2 > limits.line_bytes:
            self._record(HeadersTooLarge, f"a header line exceeds {limits.line_bytes} bytes")
            raise _Refused
        if self._header_lines > limits.headers or self._header_bytes > limits.header_bytes:
            self._record(HeadersTooLarge, self._headers_message())
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_deadline()
        if len(self.connections) > self.limits.max_connections:
            self._record(Overloaded, "too many open connections; retry shortly")
            raise _Refused
        super().on_headers_complete()

    # -- refusals ----------------------------------------------------------------------------

    def _headers_message(self) -> str:
        limits = self.limits
        return f"the request headers exceed {limits.header_bytes} bytes or {limits.headers} lines"

    def _record(self, error: type[GatewayError], message: str) -> None:
        self._refusal = (STATUS_BY_CODE[error.code], error.code, message)
        CONNECTIONS_REFUSED.labels(reason=error.code).inc()

    def _refuse(self, error: type[GatewayError], message: str) -> None:
        self._record(error, message)
        self._write_refusal()

    def _write_refusal(self) -> None:
        assert self._refusal is not None
        self._cancel_deadline()
        if self.transport.is_closing():
            return
        status, code, message = self._refusal
        status, body = error_body(status, code, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", uuid.uuid4().hex.encode()),
        ]
        if status == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join(lines) + b"\r\n" + body)
        self.transport.close()

    # -- the header deadline -----------------------------------------------------------------

    def _start_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.limits.header_seconds, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._in_headers and self._refusal is None and not self.transport.is_closing():
            seconds = self.limits.header_seconds
            self._refuse(HeaderTimeout, f"the request headers took over {seconds:g} s")


_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def with_limits(limits: EdgeLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection (`uvicorn.Config(http=...)`)."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
