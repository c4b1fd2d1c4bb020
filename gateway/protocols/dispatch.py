"""The prediction routes of every protocol, served straight from the ASGI scope.

FastAPI's per-request plumbing costs more than everything Modelgate does for a request (the
profile is in docs/benchmarks.md). `PredictRoutes` sits inside the request-id, body-limit and
CORS middleware and hands each hot `POST` route (`/v1/models/{model}/predict`, `/predict`, the
V2 `infer` routes, MLflow's `invocations`) to the same endpoint function FastAPI would call,
with the same error shapes. Every other request goes on to FastAPI, which also keeps
documenting these routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.errors import modelgate_error_response
from kernel.errors import ModelgateError

#: An endpoint, called with the request and the template's parameters by name.
Endpoint = Callable[..., Awaitable[Response]]


class HotRoute(NamedTuple):
    """One POST route template (`/v1/models/{model}/predict`) and the endpoint answering it."""

    template: str
    endpoint: Endpoint


class _Compiled(NamedTuple):
    segments: tuple[str, ...]
    params: dict[int, str]  # the name of each `{name}` segment, by position
    endpoint: Endpoint
    route: Any  # FastAPI's route of the same template: metrics and logs name it


def _compile(hot: HotRoute, routes: Sequence[BaseRoute]) -> _Compiled:
    segments = tuple(hot.template.split("/"))
    params = {i: s[1:-1] for i, s in enumerate(segments) if s.startswith("{") and s.endswith("}")}
    return _Compiled(segments, params, hot.endpoint, _route(routes, hot.template))


class PredictRoutes:
    """Pure ASGI: answers the hot routes, passes everything else to `app`."""

    def __init__(self, app: ASGIApp, hot: Sequence[HotRoute], routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # By segment count: a path is compared only with templates as long as itself.
        self.by_length: dict[int, list[_Compiled]] = {}
        for one in hot:
            compiled = _compile(one, routes)
            self.by_length.setdefault(len(compiled.segments), []).append(compiled)

    def match(self, path: str) -> tuple[_Compiled, dict[str, str]] | None:
        parts = path.split("/")
        for compiled in self.by_length.get(len(parts), ()):
            params: dict[str, str] = {}
            named = compiled.params
            for i, (want, got) in enumerate(zip(compiled.segments, parts, strict=True)):
                if i in named:
                    if not got:  # as a route's `{name}` ([^/]+): FastAPI's 404
                        break
                    params[named[i]] = got
                elif want != got:
                    break
            else:
                return compiled, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        found = self.match(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        compiled, params = found
        scope["route"] = compiled.route
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await compiled.endpoint(request=request, **params)
        except ModelgateError as exc:
            response = modelgate_error_response(exc)
        await response(scope, receive, send)


def _route(routes: Sequence[BaseRoute], template: str) -> Any:
    for route in routes:
        if getattr(route, "path", None) == template and "POST" in getattr(route, "methods", ()):
            return route
    raise LookupError(f"no POST route {template}")
