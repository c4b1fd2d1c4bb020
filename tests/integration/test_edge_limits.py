"""Limits on every part of a request, and failed logins throttled per client address, on real
gateway processes (uvicorn with the limited httptools protocol, gateway/http/edge.py) over
real sockets, and over real gRPC for the throttle."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest

from devstack.processes import Gateway, free_port, wait_until
from gateway.guard.keys import key_digest
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
HEADER_SECONDS = 2.0
MAX_CONNECTIONS = 40
FAILURES = 5  # the throttle's limit per minute here (20 by default)
VALID = "edge-limits-bootstrap-key-0123456789abcdef"


@pytest.fixture(scope="module")
def edge(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]) -> Gateway:
    return gateway_factory(
        header_timeout_seconds=str(HEADER_SECONDS),
        keep_alive_seconds="1",
        max_connections=str(MAX_CONNECTIONS),
    )


def _raw(
    gateway: Gateway, request: bytes, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Send `request` on a new socket and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as conn:
        # Refused mid-send: the answer is still in the socket.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        data = _read_all(conn)
    return _parse(data)


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _serves(gateway: Gateway) -> None:
    response = gateway.http.post("/v1/models/iris/predict", json=ROW)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "status", "names"),
    [
        (["X-Long: " + "a" * (8 * 1024)], 431, "8192 bytes"),
        ([f"X-Part-{i}: " + "b" * 7000 for i in range(5)], 431, "32768 bytes or 100 lines"),
        ([f"X-Many-{i}: c" for i in range(101)], 431, "100 lines"),
    ],
    ids=["one-line-over-8KiB", "block-over-32KiB", "101-headers"],
)
def test_oversized_headers_get_431_naming_the_limit(
    edge: Gateway, headers: list[str], status: int, names: str
) -> None:
    code, answer_headers, body = _raw(edge, _get("/healthz", *headers))
    assert code == status
    assert names in json.loads(body)["error"]["message"]
    assert answer_headers["connection"] == "close" and "x-request-id" in answer_headers
    _serves(edge)


def test_headers_at_the_limits_are_served(edge: Gateway) -> None:
    line = "X-Long: " + "a" * (8 * 1024 - 10)  # name + value + ": " just under 8 KiB
    many = [f"X-M-{i}: c" for i in range(95)]
    code, _, _ = _raw(edge, _get("/healthz", line, *many))
    assert code == 200


def test_a_long_request_target_gets_414(edge: Gateway) -> None:
    code, _, body = _raw(edge, _get("/healthz?" + "q" * 9000))
    assert code == 414 and json.loads(body)["error"]["code"] == "uri_too_long"


def test_an_8_mb_header_is_cut_early(edge: Gateway) -> None:
    started = time.monotonic()
    code, _, _ = _raw(edge, _get("/healthz", "X-Huge: " + "h" * (8 * 1024 * 1024)))
    assert code == 431
    assert time.monotonic() - started < 5
    _serves(edge)


def _slowloris(gateway: Gateway, closed: list[float], stop: threading.Event) -> None:
    """Open a connection and send one header line a second, never ending the block; record
    when the server closed it (and check it said 408)."""
    conn = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    opened = time.monotonic()
    try:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        conn.settimeout(1.0)
        data = b""
        while not stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 408"):
            closed.append(time.monotonic() - opened)
    finally:
        conn.close()


def test_slowloris_connections_are_cut_and_others_served(edge: Gateway) -> None:
    closed: list[float] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_slowloris, args=(edge, closed, stop), daemon=True)
        for _ in range(MAX_CONNECTIONS // 2)
    ]
    for thread in threads:
        thread.start()
    try:
        latencies = []
        deadline = time.monotonic() + HEADER_SECONDS + 1
        while time.monotonic() < deadline:
            started = time.monotonic()
            _serves(edge)
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)
        for thread in threads:
            thread.join(HEADER_SECONDS + 10)
    finally:
        stop.set()
    # Every slow connection got its 408 and was closed at the deadline, not before.
    assert len(closed) == len(threads), closed
    assert all(HEADER_SECONDS - 0.2 <= seconds <= HEADER_SECONDS + 3 for seconds in closed), closed
    assert max(latencies) < 1.0, latencies


def test_idle_keep_alive_connections_are_closed(edge: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole answer: headers, then the JSON body
            first += conn.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _read_all(conn) == b""  # closed by the server, after keep_alive_seconds
        assert 0.5 <= time.monotonic() - started < 4


def test_connections_past_the_cap_get_503_and_those_under_it_are_served(edge: Gateway) -> None:
    idle = [socket.create_connection(("127.0.0.1", edge.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_until(lambda: _raw(edge, _get("/healthz"))[0] == 503, 5, "the cap reached")
        code, headers, body = _raw(edge, _get("/healthz"))
        assert code == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "overloaded"
    finally:
        for conn in idle:
            conn.close()
    wait_until(lambda: _raw(edge, _get("/healthz"))[0] == 200, 5, "served again")


@pytest.mark.parametrize("path", ["/v1/models/", "/healthz/", "/predict/"])
def test_a_trailing_slash_never_redirects_to_the_host_header(edge: Gateway, path: str) -> None:
    response = httpx.get(edge.url + path, headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 404
    assert "location" not in response.headers


# -- credentials ----------------------------------------------------------------------------


def test_more_than_one_credential_is_refused(edge: Gateway) -> None:
    key = edge.api_key or ""
    raw = [(b"x-api-key", key.encode()), (b"x-api-key", key.encode())]
    two = httpx.post(edge.url + "/v1/models/iris/predict", json=ROW, headers=raw, timeout=10)
    assert two.status_code == 400 and two.json()["error"]["code"] == "ambiguous_credentials"
    differ = {"X-API-Key": key, "Authorization": "Bearer mg_other_key"}
    response = httpx.post(edge.url + "/v1/models/iris/predict", json=ROW, headers=differ)
    assert response.status_code == 400
    same = {"X-API-Key": key, "Authorization": f"Bearer {key}"}
    assert httpx.post(edge.url + "/v1/models/iris/predict", json=ROW, headers=same).is_success


# -- the failed-authentication throttle ------------------------------------------------------


@pytest.fixture(scope="module")
def throttled(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> Iterator[tuple[Gateway, Gateway, int]]:
    """Two gateways sharing one Redis, with a low failure limit, a bootstrap key valid on
    both, gRPC on the first, and (on the second) 127.0.0.1 as a trusted proxy."""
    grpc_port = free_port()
    common = {
        "auth_failure_limit": f"{FAILURES}/minute",
        "bootstrap_admin_key_sha256": key_digest(VALID),
        "key_prefix": f"mgthrottle{time.time_ns()}:",
    }
    first = gateway_factory(api_key=None, grpc_port=str(grpc_port), **common)
    second = gateway_factory(api_key=None, trusted_proxies="127.0.0.1", **common)
    yield first, second, grpc_port


def _predict(gateway: Gateway, key: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/models/iris/predict",
        json=ROW,
        headers={"X-API-Key": key, **headers},
        timeout=10,
    )


def test_failed_logins_are_throttled_across_gateways_and_a_valid_key_still_served(
    throttled: tuple[Gateway, Gateway, int],
) -> None:
    first, second, grpc_port = throttled
    statuses = [
        _predict(first if i % 2 else second, f"wrong-{i}").status_code for i in range(FAILURES)
    ]
    assert statuses == [401] * FAILURES
    # Both gateways counted into one window: the next failure on either is a 429.
    for gateway in (first, second):
        refused = _predict(gateway, "wrong-again")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "auth_throttled"
        assert int(refused.headers["Retry-After"]) >= 1
    # During the brute force, a valid key from the same address is served on both.
    with ThreadPoolExecutor(8) as pool:
        brute = [pool.submit(_predict, first, f"brute-{i}") for i in range(40)]
        valid = [_predict(g, VALID) for g in (first, second) for _ in range(10)]
        assert {f.result().status_code for f in brute} == {429}
    assert [r.status_code for r in valid] == [200] * 20
    # gRPC metadata auth counts against the same address, in the same window.
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        request = pb.ModelMetadataRequest(name="iris")
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelMetadata(request, metadata=(("x-api-key", "wrong-grpc"),), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = stub.ModelMetadata(request, metadata=(("x-api-key", VALID),), timeout=10)
        assert answer.name == "iris"


def test_a_spoofed_forwarded_for_counts_only_behind_a_trusted_proxy(
    throttled: tuple[Gateway, Gateway, int],
) -> None:
    first, second, _ = throttled
    # No proxy is trusted by the first gateway: a client's X-Forwarded-For is ignored, so a
    # new address per request does not escape the (already exhausted) throttle of 127.0.0.1.
    spoofed = [
        _predict(first, "wrong", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(3)
    ]
    assert spoofed == [429] * 3
    # Behind a trusted proxy (the second trusts 127.0.0.1), the right-most untrusted hop is
    # the client: a fresh address starts its own count, whatever the client wrote left of it.
    hops = {"X-Forwarded-For": "198.51.100.7, 192.0.2.44"}
    assert _predict(second, "wrong", **hops).status_code == 401
    assert _predict(second, VALID, **hops).status_code == 200

    def clients() -> set[str | None]:
        records = [
            json.loads(line)
            for gateway in (first, second)
            for line in gateway.log_path.read_text().splitlines()
            if line.startswith("{") and '"request"' in line
        ]
        return {r.get("client") for r in records if r.get("message") == "request"}

    # Access lines are written once the answers are sent: the client may read them first.
    wait_until(lambda: {"192.0.2.44", "127.0.0.1"} <= clients(), 5, "the access log lines")
    logged = clients()
    assert not logged & {"198.51.100.7", "203.0.113.0", "203.0.113.1", "203.0.113.2"}


def test_a_long_path_is_logged_cut(edge: Gateway) -> None:
    path = "/v1/models/" + "p" * 5000
    assert httpx.get(edge.url + path, timeout=10).status_code in (401, 404)

    def logged() -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for line in edge.log_path.read_text().splitlines()
            if line.startswith("{") and "pppp" in line
        ]

    # The access line is written once the answer is sent: the client may read it first.
    wait_until(lambda: bool(logged()), 5, "the access log line")
    lines = logged()
    assert all(len(r["path"]) <= 300 for r in lines)
    assert lines[-1]["path"].endswith("...(cut)")
