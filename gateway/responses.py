"""JSON responses serialised with orjson, carrying the model version that answered."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.dataplane.plane import CacheCount
from registry.model import LoadedModel


def json_response(
    payload: Any,
    status: int = 200,
    model: LoadedModel | None = None,
    cache: CacheCount | None = None,
) -> Response:
    headers = model_headers(model, cache)
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def model_headers(model: LoadedModel | None, cache: CacheCount | None = None) -> dict[str, str]:
    """The headers naming the version that answered (every protocol sends them), and how many
    rows the cache answered."""
    headers: dict[str, str] = {}
    if model is not None:
        headers["X-Model-Name"] = model.name
        headers["X-Model-Version"] = str(model.version)
        headers["X-Model-Runtime"] = model.runtime.name
    if cache is not None:
        headers["X-Cache-Hits"] = str(cache.hits)
        headers["X-Cache-Misses"] = str(cache.misses)
    return headers
