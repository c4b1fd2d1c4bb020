"""The request middleware counts requests by route template, never by raw path or odd method."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

with warnings.catch_warnings():
    # Starlette prefers `httpx2` now; the pinned `httpx` still drives TestClient the same way.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gateway.http.errors import install_error_handlers
from gateway.http.middleware import RequestContextMiddleware

ROUTE = "/metrics-test/items/{item}"


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get(ROUTE)
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    @app.get("/metrics-test/boom")
    async def boom() -> None:
        raise RuntimeError("fails")

    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def count(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("modelgate_http_requests_total", labels) or 0.0


def observed(route: str) -> float:
    return REGISTRY.get_sample_value("modelgate_http_request_seconds_count", {"route": route}) or 0


def test_requests_are_counted_by_route_template(client: TestClient) -> None:
    before, timed = count(ROUTE, "GET", "200"), observed(ROUTE)
    for n in range(3):
        assert client.get(f"/metrics-test/items/{n}").status_code == 200
    assert client.get("/metrics-test/items/not-a-number").status_code == 422
    assert count(ROUTE, "GET", "200") == before + 3
    assert count(ROUTE, "GET", "422") >= 1
    assert observed(ROUTE) == timed + 4
    # No series for the raw path.
    assert (
        REGISTRY.get_sample_value(
            "modelgate_http_requests_total",
            {"route": "/metrics-test/items/1", "method": "GET", "status": "200"},
        )
        is None
    )


def test_unmatched_paths_and_odd_methods_stay_bounded(client: TestClient) -> None:
    before_other = count("other", "GET", "404")
    before_405 = count(ROUTE, "other", "405")
    for n in range(3):
        assert client.get(f"/metrics-test/nothing/{n}").status_code == 404
    assert client.request("BREW", "/metrics-test/items/1").status_code == 405
    assert count("other", "GET", "404") == before_other + 3
    assert count(ROUTE, "other", "405") == before_405 + 1


def test_unhandled_errors_count_as_500(client: TestClient) -> None:
    before = count("/metrics-test/boom", "GET", "500")
    assert client.get("/metrics-test/boom").status_code == 500
    assert count("/metrics-test/boom", "GET", "500") == before + 1
