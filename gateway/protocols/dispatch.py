"""The two prediction routes, served straight from the ASGI scope.

FastAPI's per-request plumbing costs more than everything Modelgate does for a request (the
profile is in docs/benchmarks.md). `PredictRoutes` sits
inside the request-id, body-limit and CORS middleware and hands `POST /v1/models/{model}/predict`
and `POST /predict` to the same endpoint functions FastAPI would call, with the same error
envelope. Every other request goes on to FastAPI, which also keeps documenting these routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.errors import modelgate_error_response
from gateway.protocols import legacy, v1
from kernel.errors import ModelgateError

_V1_PREFIX = "/v1/models/"
_V1_SUFFIX = "/predict"
_V1_TEMPLATE = "/v1/models/{model}/predict"
_LEGACY = "/predict"


class PredictRoutes:
    """Pure ASGI: answers the prediction routes, passes everything else to `app`."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        # The matched route is put in the scope as FastAPI's router does: the request metrics
        # and logs name it by its template.
        self.v1_route = _route(routes, _V1_TEMPLATE)
        self.legacy_route = _route(routes, _LEGACY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        call: Callable[[Request], Awaitable[Response]]
        if path == _LEGACY:
            scope["route"] = self.legacy_route
            call = legacy.predict
        elif path.startswith(_V1_PREFIX) and path.endswith(_V1_SUFFIX):
            model = path[len(_V1_PREFIX) : -len(_V1_SUFFIX)]
            if not model or "/" in model:  # as the route's `{model}` ([^/]+): FastAPI's 404
                await self.app(scope, receive, send)
                return
            scope["route"] = self.v1_route
            scope["path_params"] = {"model": model}

            def call(request: Request) -> Awaitable[Response]:
                return v1.predict(model, request)

        else:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await call(request)
        except ModelgateError as exc:
            response = modelgate_error_response(exc)
        await response(scope, receive, send)


def _route(routes: list[BaseRoute], template: str) -> Any:
    for route in routes:
        if getattr(route, "path", None) == template and "POST" in getattr(route, "methods", ()):
            return route
    raise LookupError(f"no POST route {template}")
