"""What every adapter needs to make a call: the `PredictCall` of an authorized request."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from gateway.dataplane.plane import Caller, PredictCall
from gateway.guard.keys import ApiKey
from gateway.http.errors import request_id_var

#: Longest route key kept (a client-chosen string, used later to pin a caller to a variant).
MAX_ROUTE_KEY = 128


def caller_of(request: Request, key: ApiKey) -> Caller:
    """The caller of an authorized request; `X-Route-Key`, when sent, travels with it."""
    route_key = request.headers.get("x-route-key")
    return Caller(key.id, key.owner, route_key[:MAX_ROUTE_KEY] if route_key else None)


def make_call(
    request: Request,
    key: ApiKey,
    protocol: str,
    model: str,
    kind: str,
    rows: Any,
    version: int | None,
) -> PredictCall:
    return PredictCall(
        model=model,
        kind=kind,
        rows=rows,
        version=version,
        caller=caller_of(request, key),
        request_id=request_id_var.get(),
        protocol=protocol,
    )
