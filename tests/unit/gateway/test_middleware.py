"""Request ids, the streaming body limit and the error envelope (gateway/http/).

A tiny app with the gateway's error handlers and middlewares, driven in-process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request

with warnings.catch_warnings():
    # Starlette prefers `httpx2` now; the pinned `httpx` still drives TestClient the same way.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gateway.http.errors import Overloaded, install_error_handlers
from gateway.http.middleware import BodyLimitMiddleware, RequestContextMiddleware
from kernel.errors import InvalidInput

LIMIT = 1024


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret path /etc/x")

    @app.get("/invalid")
    async def invalid() -> None:
        raise InvalidInput("row 0, column 'a': expected a number")

    @app.get("/busy")
    async def busy() -> None:
        raise Overloaded("too many predictions in progress; retry shortly")

    @app.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    # Same order as gateway.app: the request id exists before the body limit refuses anything.
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def chunks(total: int, size: int = 256) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def assert_envelope(response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# -- body limit ------------------------------------------------------------------------------


def test_body_under_the_limit_is_read(client: TestClient) -> None:
    response = client.post("/echo", content=b"x" * 100)
    assert response.status_code == 200
    assert response.json() == {"size": 100}


def test_body_exactly_at_the_limit_is_read(client: TestClient) -> None:
    response = client.post("/echo", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


def test_content_length_over_the_limit_is_refused_at_once(client: TestClient) -> None:
    response = client.post("/echo", content=b"x" * (LIMIT + 1))
    error = assert_envelope(response, 413, "body_too_large")
    assert str(LIMIT) in error["message"]


def test_content_length_that_is_not_a_number_is_refused(client: TestClient) -> None:
    response = client.post("/echo", content=b"x", headers={"content-length": "-1"})
    assert_envelope(response, 413, "body_too_large")


def test_chunked_body_over_the_limit_is_refused_while_streaming(
    client: TestClient,
) -> None:
    response = client.post("/echo", content=chunks(LIMIT * 4))
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "body_too_large")


def test_chunked_body_under_the_limit_is_read(client: TestClient) -> None:
    response = client.post("/echo", content=chunks(LIMIT - 1))
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT - 1}


# -- request id ------------------------------------------------------------------------------


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    for response in (
        client.post("/echo", content=b"{}"),
        client.post("/echo", content=b"x" * (LIMIT + 1)),
        client.get("/nowhere"),
        client.get("/invalid"),
    ):
        assert response.headers.get("x-request-id"), response.status_code


def test_request_ids_differ_between_requests(client: TestClient) -> None:
    first = client.post("/echo", content=b"{}").headers["x-request-id"]
    second = client.post("/echo", content=b"{}").headers["x-request-id"]
    assert first != second


def test_sane_incoming_request_id_is_echoed(client: TestClient) -> None:
    response = client.post("/echo", content=b"{}", headers={"X-Request-ID": "abc-123_x.y"})
    assert response.headers["x-request-id"] == "abc-123_x.y"


def test_sane_incoming_request_id_appears_in_the_error_body(client: TestClient) -> None:
    response = client.get("/invalid", headers={"X-Request-ID": "trace-42"})
    error = assert_envelope(response, 422, "invalid_input")
    assert error["request_id"] == "trace-42"


def test_sane_request_id_appears_in_the_early_413(client: TestClient) -> None:
    response = client.post("/echo", content=b"x" * (LIMIT + 1), headers={"X-Request-ID": "big-1"})
    assert assert_envelope(response, 413, "body_too_large")["request_id"] == "big-1"


@pytest.mark.parametrize(
    "incoming", ["has spaces in it", "a" * 200, "semi;colon", "new\tline", "<script>"]
)
def test_insane_incoming_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    response = client.get("/invalid", headers={"X-Request-ID": incoming})
    replaced = response.headers["x-request-id"]
    assert replaced and replaced != incoming
    assert incoming not in response.text
    assert response.json()["error"]["request_id"] == replaced


# -- error envelope --------------------------------------------------------------------------


def test_unexpected_error_is_a_500_envelope_without_its_text(
    client: TestClient,
) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "secret" not in response.text
    assert "/etc/x" not in response.text
    assert "Traceback" not in response.text


def test_unexpected_error_keeps_the_request_id(client: TestClient) -> None:
    response = client.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert response.headers.get("x-request-id") == "crash-1"
    assert_envelope(response, 500, "internal")


def test_unknown_route_is_a_404_envelope(client: TestClient) -> None:
    error = assert_envelope(client.get("/nowhere"), 404, "not_found")
    assert "nowhere" not in error["message"]


def test_wrong_method_is_a_405_envelope(client: TestClient) -> None:
    assert_envelope(client.get("/echo"), 405, "method_not_allowed")


def test_modelgate_error_maps_to_its_status(client: TestClient) -> None:
    error = assert_envelope(client.get("/invalid"), 422, "invalid_input")
    assert error["message"] == "row 0, column 'a': expected a number"


def test_503_errors_carry_retry_after(client: TestClient) -> None:
    response = client.get("/busy")
    assert_envelope(response, 503, "overloaded")
    assert response.headers["retry-after"] == "1"


def test_validation_error_names_the_place_not_the_value(client: TestClient) -> None:
    error = assert_envelope(client.get("/items/s3cr3t"), 422, "invalid_request")
    assert "item" in error["message"]
    assert "s3cr3t" not in error["message"]
