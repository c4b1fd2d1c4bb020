"""Security headers, route headers and the access log of RequestContextMiddleware.

A tiny app with the gateway's error handlers and request middleware, driven in-process; the body
limit and request ids themselves are covered by test_middleware.py. Also the CORS setting.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

with warnings.catch_warnings():
    # Starlette prefers `httpx2` now; the pinned `httpx` still drives TestClient the same way.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gateway.http.errors import install_error_handlers
from gateway.http.middleware import RequestContextMiddleware
from gateway.logs import request_context
from gateway.settings import GatewaySettings
from kernel.errors import InvalidInput
from kernel.logs import JsonFormatter

KEY_VALUE = "mg_a1b2c3_thisisthesecretpartofthekey000000000000"
LIMIT_HEADERS = {"RateLimit-Policy": '"predict";q=600;w=60', "RateLimit": '"predict";r=599;t=60'}

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
API_CSP = "default-src 'none'"


def build_app() -> FastAPI:
    app = FastAPI()  # with its default /docs and /openapi.json
    install_error_handlers(app)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    @app.get("/limited")
    async def limited(request: Request) -> dict[str, bool]:
        # What gateway.deps.require does once the key is known and counted.
        request.state.api_key_id = "a1b2c3"
        request.state.owner = "acme"
        request.state.response_headers = dict(LIMIT_HEADERS)
        return {"ok": True}

    @app.get("/limited-then-invalid")
    async def limited_then_invalid(request: Request) -> None:
        request.state.api_key_id = "a1b2c3"
        request.state.owner = "acme"
        request.state.response_headers = dict(LIMIT_HEADERS)
        raise InvalidInput("row 0, column 'a': expected a number")

    @app.get("/limited-then-boom")
    async def limited_then_boom(request: Request) -> None:
        request.state.response_headers = dict(LIMIT_HEADERS)
        raise RuntimeError("unexpected")

    @app.get("/own-header")
    async def own_header(request: Request) -> JSONResponse:
        request.state.response_headers = {"RateLimit": "from-state", "X-Extra": "yes"}
        return JSONResponse({"ok": True}, headers={"RateLimit": "from-route"})

    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_security_headers(response, *, csp: bool = True) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (name, response.status_code)
    if csp:
        policy = response.headers["content-security-policy"]
        assert policy.startswith(API_CSP)
        assert "frame-ancestors 'none'" in policy


# -- security headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ok", 200),
        ("GET", "/limited", 200),
        ("GET", "/nowhere", 404),
        ("POST", "/ok", 405),
        ("GET", "/limited-then-invalid", 422),
        ("GET", "/boom", 500),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_response_carries_the_security_headers(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert_security_headers(response)


@pytest.mark.parametrize("path", ["/docs", "/docs/oauth2-redirect"])
def test_docs_get_no_content_security_policy(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
    assert_security_headers(response, csp=False)


def test_security_headers_are_sent_once(client: TestClient) -> None:
    response = client.get("/ok")
    for name in [*EXPECTED, "content-security-policy", "x-request-id"]:
        assert len(response.headers.get_list(name)) == 1, name


# -- headers stored by a route ---------------------------------------------------------------


def test_route_headers_from_request_state_are_sent(client: TestClient) -> None:
    response = client.get("/limited")
    assert response.status_code == 200
    for name, value in LIMIT_HEADERS.items():
        assert response.headers.get_list(name) == [value]


def test_route_headers_are_sent_with_a_later_error(client: TestClient) -> None:
    response = client.get("/limited-then-invalid")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    for name, value in LIMIT_HEADERS.items():
        assert response.headers[name] == value


def test_route_headers_are_sent_with_a_500(client: TestClient) -> None:
    response = client.get("/limited-then-boom")
    assert response.status_code == 500
    assert response.headers["ratelimit"] == LIMIT_HEADERS["RateLimit"]


def test_headers_set_by_the_response_win_over_stored_ones(client: TestClient) -> None:
    response = client.get("/own-header")
    assert response.headers.get_list("ratelimit") == ["from-route"]
    assert response.headers["x-extra"] == "yes"


def test_no_route_headers_without_request_state(client: TestClient) -> None:
    response = client.get("/ok")
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


# -- access log ------------------------------------------------------------------------------


class FormattedLines(logging.Handler):
    """Formats each record as it is emitted, as the gateway's stdout handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter(request_context))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, object]]]:
    handler = FormattedLines()
    access = logging.getLogger("gateway.access")
    access.addHandler(handler)
    try:
        yield handler.lines
    finally:
        access.removeHandler(handler)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.access" and r.getMessage() == "request"]


def test_access_log_carries_the_key_id_and_owner(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = client.get("/limited", headers={"X-API-Key": KEY_VALUE})
    assert response.status_code == 200
    (record,) = access_records(caplog)
    assert record.api_key_id == "a1b2c3"  # type: ignore[attr-defined]
    assert record.owner == "acme"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.path == "/limited"  # type: ignore[attr-defined]


def test_access_log_without_a_key_has_none(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    client.get("/ok")
    (record,) = access_records(caplog)
    assert record.api_key_id is None  # type: ignore[attr-defined]
    assert record.owner is None  # type: ignore[attr-defined]


def test_access_log_line_carries_the_request_id(
    client: TestClient, access_lines: list[dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = client.get("/limited", headers={"X-Request-ID": "trace-77"})
    assert response.headers["x-request-id"] == "trace-77"
    (line,) = [x for x in access_lines if x["message"] == "request"]
    assert line["request_id"] == "trace-77"
    assert line["api_key_id"] == "a1b2c3"
    assert line["owner"] == "acme"
    assert line["status"] == 200


def test_access_log_of_a_500_carries_the_request_id(
    client: TestClient, access_lines: list[dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = client.get("/boom")
    (line,) = [x for x in access_lines if x["message"] == "request"]
    assert line["status"] == 500
    assert line["request_id"] == response.headers["x-request-id"]


def test_access_log_never_contains_the_key(
    client: TestClient, access_lines: list[dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    client.get(
        "/limited",
        params={"api_key": KEY_VALUE},
        headers={"X-API-Key": KEY_VALUE, "Authorization": f"Bearer {KEY_VALUE}"},
    )
    client.get("/boom", headers={"X-API-Key": KEY_VALUE})
    assert access_lines
    assert KEY_VALUE not in orjson.dumps(access_lines).decode()
    assert all(KEY_VALUE not in r.getMessage() for r in caplog.records)


# -- CORS setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        (" , ,", []),
        ("https://a.example", ["https://a.example"]),
        (
            " https://a.example ,https://b.example:8443,, ",
            ["https://a.example", "https://b.example:8443"],
        ),
    ],
)
def test_cors_origin_list_splits_and_strips(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("MODELGATE_CORS_ORIGINS", value)
    assert GatewaySettings(_env_file=None).cors_origin_list == expected


def test_cors_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGATE_CORS_ORIGINS", raising=False)
    assert GatewaySettings(_env_file=None).cors_origin_list == []
