"""JSON responses serialised with orjson, carrying the model version that answered."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from registry.model import LoadedModel


def json_response(payload: Any, status: int = 200, model: LoadedModel | None = None) -> Response:
    headers = None
    if model is not None:
        headers = {"X-Model-Name": model.name, "X-Model-Version": str(model.version)}
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")
