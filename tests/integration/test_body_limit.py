"""A body refused by its Content-Length still gets its 413 read by a client that sends the
whole body before reading the answer (gateway/http/middleware.py, BodyLimitMiddleware).

Python's urllib (http.client) is such a client: it reads nothing until `sendall` returns. Were
the gateway to close as soon as it has answered, the unread body would make the kernel reset the
connection, and urllib would raise ConnectionResetError/URLError instead of showing the 413.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

from devstack.processes import Gateway
from gateway.http.middleware import LINGER_SECONDS

#: Larger than both the shared gateway's limit (64 KiB) and the default limit (2 MiB).
BODY_BYTES = 3 * 1024 * 1024
#: The reset is a race (the whole body may fit in the socket buffers before it): without the
#: lingering close about half the attempts fail, so several make the test fail reliably then.
ATTEMPTS = 5


def post_with_urllib(gateway: Gateway, body: bytes) -> urllib.error.HTTPError:
    request = urllib.request.Request(
        gateway.url + "/predict",
        data=body,  # urllib sets Content-Length from it
        headers={"Content-Type": "application/json", "X-API-Key": str(gateway.api_key)},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raise AssertionError(f"expected a 413, got {response.status}")
    except urllib.error.HTTPError as refused:  # an answer was read: not a URLError
        return refused


def test_urllib_reads_the_413_of_a_body_announced_too_large(gateway: Gateway) -> None:
    body = b" " * BODY_BYTES
    for _ in range(ATTEMPTS):
        with post_with_urllib(gateway, body) as refused:
            assert refused.code == 413
            assert refused.headers["Content-Type"] == "application/json"
            envelope = json.loads(refused.read())
        assert envelope["error"]["code"] == "body_too_large"
        assert envelope["error"]["request_id"]
    # The refused requests cost the gateway nothing lasting: it goes on serving.
    assert gateway.http.get("/healthz").status_code == 200
    ok = gateway.http.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]})
    assert ok.status_code == 200


def test_a_stalled_body_is_given_up_within_the_linger_time(gateway: Gateway) -> None:
    """A client announcing a huge body and sending none of it: the 413 is sent at once, and the
    connection is closed once the linger time is over, not held open for the body."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        started = time.monotonic()
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        closed_after = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["error"]["code"] == "body_too_large"
    # Closed by the linger bound (with room for a slow machine), not by the client's timeout.
    assert LINGER_SECONDS - 0.5 <= closed_after <= LINGER_SECONDS + 3
    assert gateway.http.get("/healthz").status_code == 200


def test_a_client_expecting_100_continue_is_refused_before_it_sends(gateway: Gateway) -> None:
    """The 413 comes first, so the body is never asked for ("100 Continue" is not sent) and a
    client that waits for it (curl does, for large bodies) sends nothing and closes."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % BODY_BYTES
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            assert chunk, "closed before answering"
            head += chunk
    assert head.startswith(b"HTTP/1.1 413 ")
