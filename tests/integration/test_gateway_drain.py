"""SIGTERM drains a real gateway: not ready first, still serving, then in-flight requests finish.

A second signal stops it at once.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.processes import wait_until
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

pytestmark = pytest.mark.integration

ROW = [5.1, 3.5, 1.4, 0.2]
DRAIN_SECONDS = 1.5
#: The slow request's body arrives over this long: it is still in flight when the port closes.
SLOW_BODY_SECONDS = DRAIN_SECONDS + 1.5


def _slow_body(rows: int, seconds: float) -> Iterator[bytes]:
    """A JSON body sent in pieces, the last one `seconds` after the first."""
    pieces = [b'{"instances": [', *[b"[5.1, 3.5, 1.4, 0.2]," for _ in range(rows - 1)]]
    pieces.append(b"[5.1, 3.5, 1.4, 0.2]]}")
    pause = seconds / (len(pieces) - 1)
    for index, piece in enumerate(pieces):
        if index:
            time.sleep(pause)
        yield piece


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_drains_then_finishes_in_flight_requests(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
):
    gateway = gateway_factory(drain_seconds=str(DRAIN_SECONDS), graceful_shutdown_seconds="10")
    assert gateway.http.get("/readyz").json()["status"] == "ready"
    slow: dict[str, httpx.Response | httpx.HTTPError] = {}

    def send_slow() -> None:
        with httpx.Client(timeout=30) as client:
            try:
                slow["response"] = client.post(
                    gateway.url + "/v1/models/iris/predict",
                    content=_slow_body(rows=8, seconds=SLOW_BODY_SECONDS),
                    headers={
                        "X-API-Key": gateway.api_key or "",
                        "Content-Type": "application/json",
                    },
                )
            except httpx.HTTPError as exc:  # reported by the assertion below
                slow["response"] = exc

    sender = threading.Thread(target=send_slow)
    sender.start()
    time.sleep(0.3)  # its first bytes are in: the request is in flight
    signalled = time.monotonic()
    gateway.send_signal(signal.SIGTERM)

    # Draining: not ready, alive, and still answering predictions, each telling its client
    # to reconnect (so a proxy's keep-alive connections move elsewhere).
    wait_until(lambda: gateway.http.get("/readyz").status_code == 503, 1.0, "readyz 503")
    readyz = gateway.http.get("/readyz")
    assert readyz.json()["status"] == "draining"
    assert gateway.http.get("/healthz").status_code == 200
    during = gateway.http.post("/v1/models/iris/predict", json={"instances": [ROW]})
    assert during.status_code == 200, during.text
    assert during.headers["connection"] == "close"

    # The port closes once the drain is over, not before.
    wait_until(lambda: _refuses_connections(gateway.port), DRAIN_SECONDS + 3, "port closed")
    closed_after = time.monotonic() - signalled
    assert DRAIN_SECONDS - 0.2 <= closed_after <= DRAIN_SECONDS + 1.5, closed_after

    # The request that was in flight all along finishes with its answer.
    sender.join(SLOW_BODY_SECONDS + 10)
    assert not sender.is_alive()
    response = slow["response"]
    assert isinstance(response, httpx.Response), repr(response)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [0] * 8

    assert gateway.proc is not None
    # uvicorn re-raises the signal it handled once it has stopped: the exit status says SIGTERM.
    assert gateway.proc.wait(10) == -signal.SIGTERM
    log = gateway.log_path.read_text()
    for phase in (
        "stop signal: draining",
        "drain over",
        "waiting for in-flight",
        "gateway stopped",
    ):
        assert phase in log, phase
    assert "second stop signal" not in log


def test_a_second_signal_stops_at_once(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
):
    gateway = gateway_factory(drain_seconds="60")
    gateway.send_signal(signal.SIGTERM)
    wait_until(lambda: gateway.http.get("/readyz").status_code == 503, 1.0, "readyz 503")
    # Still serving while it drains.
    assert (
        gateway.http.post("/v1/models/iris/predict", json={"instances": [ROW]}).status_code == 200
    )
    second = time.monotonic()
    gateway.send_signal(signal.SIGINT)
    assert gateway.proc is not None
    gateway.proc.wait(5)
    assert time.monotonic() - second < 2.0
    assert "second stop signal" in gateway.log_path.read_text()
