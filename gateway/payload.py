"""Reading request bodies: media type, size (via the body-limit middleware) and strict JSON."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from gateway.errors import EmptyBody, InvalidJson, UnsupportedMediaType


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request, *, missing_type_is_json: bool = False) -> Any:
    """The parsed JSON body; NaN and Infinity are refused, as JSON itself refuses them."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        if not missing_type_is_json:
            raise UnsupportedMediaType("send the body as application/json")
    elif not is_json_media_type(content_type):
        raise UnsupportedMediaType("send the body as application/json")
    body = await request.body()
    if not body.strip():
        raise EmptyBody("No data provided")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses integers past 64 bits, which JSON allows; the slow parser settles those.
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidJson("the body is not valid JSON") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
