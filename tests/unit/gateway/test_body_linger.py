"""The lingering close after a 413 by Content-Length is bounded (gateway/http/middleware.py).

Pure ASGI calls with a scripted `receive`: how much of the body is read, and in which order the
messages go, which a real server cannot show exactly (its socket buffers hide what was read).
tests/integration/test_body_limit.py covers the effect on a real client and the time bound.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import Message, Receive, Scope, Send

from gateway.http.middleware import LINGER_BYTES, BodyLimitMiddleware

CHUNK = 64 * 1024
SCOPE: Scope = {
    "type": "http",
    "method": "POST",
    "path": "/predict",
    "headers": [(b"content-length", b"1073741824")],  # 1 GiB announced
}


async def never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a refused body reached the app")


def refuse(messages: list[Message]) -> tuple[list[Message], int]:
    """Run the middleware on a body made of `messages` (then endless chunks); returns what it
    sent and how many messages it read."""
    sent: list[Message] = []
    read = 0

    async def receive() -> Message:
        nonlocal read
        read += 1
        if messages:
            return messages.pop(0)
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(never_called, max_bytes=1024)(SCOPE, receive, send))
    return sent, read


def test_the_413_is_sent_whole_before_the_body_is_read_and_ends_after() -> None:
    sent, _ = refuse([])
    start, body, end = sent
    assert start["type"] == "http.response.start" and start["status"] == 413
    assert orjson.loads(body["body"])["error"]["code"] == "body_too_large"
    assert body["more_body"] is True  # left open while the body is discarded
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_fast_client_is_read_for_at_most_the_linger_bytes() -> None:
    _, read = refuse([])
    assert read == LINGER_BYTES // CHUNK


def test_the_reading_stops_where_the_body_ends() -> None:
    last = {"type": "http.request", "body": b"x" * CHUNK, "more_body": False}
    _, read = refuse([{"type": "http.request", "body": b"x" * CHUNK, "more_body": True}, last])
    assert read == 2


def test_the_reading_stops_when_the_client_goes_away() -> None:
    sent, read = refuse([{"type": "http.disconnect"}])
    assert read == 1
    assert sent[-1]["more_body"] is False
