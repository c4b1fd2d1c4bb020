"""Reading request bodies: media type, size (via the body-limit middleware) and strict JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request

from gateway.http.errors import EmptyBody, InvalidJson, UnsupportedMediaType
from gateway.http.media import is_json_media_type
from kernel.errors import InvalidInput

#: Bodies up to this size are parsed on the event loop (microseconds); larger ones in a thread.
INLINE_PARSE_BYTES = 64 * 1024
#: The problem of a NaN or Infinity literal, which Python's json.dumps writes and JSON lacks.
NAN_LITERAL = "NaN and Infinity are not JSON: send null for a missing value"


async def read_json(request: Request, *, missing_type_is_json: bool = False) -> Any:
    """The parsed JSON body; NaN and Infinity are refused, as JSON itself refuses them (null is
    JSON's missing value)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        if not missing_type_is_json:
            raise UnsupportedMediaType("send the body as application/json")
    elif not is_json_media_type(content_type):
        raise UnsupportedMediaType("send the body as application/json")
    body = await request.body()
    if not body.strip():
        raise EmptyBody("No data provided")
    # Large bodies are parsed in a thread so that one upload never stalls the event loop.
    if len(body) > INLINE_PARSE_BYTES:
        return await asyncio.to_thread(parse_json, body)
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson reads integers past 64 bits as floats, and refuses only what overflows a double.
        if "infinity" in str(exc):
            raise InvalidInput("a number is out of range") from None
        if is_nan_literal(exc):
            raise InvalidInput(NAN_LITERAL) from None
        raise InvalidJson("the body is not valid JSON") from None


def is_nan_literal(error: orjson.JSONDecodeError) -> bool:
    """Whether orjson stopped at a NaN or Infinity literal (after its sign, for -Infinity).

    orjson refuses them as invalid JSON; this looks only at where it stopped, so valid bodies
    pay nothing for it.
    """
    doc, pos = getattr(error, "doc", None), getattr(error, "pos", None)
    if not isinstance(doc, str | bytes) or not isinstance(pos, int):
        return False
    head = doc[pos : pos + 3]
    if isinstance(head, bytes):
        head = head.decode("ascii", "replace")
    return head.lower() in ("nan", "inf")
