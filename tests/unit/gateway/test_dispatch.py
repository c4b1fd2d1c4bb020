"""The fast dispatch matches route templates as FastAPI's router would (pure)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from gateway.protocols.dispatch import HotRoute, PredictRoutes


async def _endpoint(**params: Any) -> Response:
    return Response()


def test_templates_match_by_segment_and_capture_parameters() -> None:
    router = APIRouter()
    templates = [
        "/predict",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer",
    ]
    for template in templates:
        router.add_api_route(template, _endpoint, methods=["POST"])
    routes = PredictRoutes(None, [HotRoute(t, _endpoint) for t in templates], router.routes)  # type: ignore[arg-type]
    found = routes.match("/v2/models/iris/versions/3/infer")
    assert found is not None and found[1] == {"model": "iris", "version": "3"}
    assert found[0].route.path == "/v2/models/{model}/versions/{version}/infer"
    assert routes.match("/v2/models/iris/infer") is not None
    assert routes.match("/predict") is not None and routes.match("/predict")[1] == {}  # type: ignore[index]
    for path in ("/v2/models//infer", "/v2/models/a/b/infer", "/v2/models/iris/infer/", "/other"):
        assert routes.match(path) is None, path
