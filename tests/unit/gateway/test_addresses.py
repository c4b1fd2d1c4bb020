"""The client address: the peer unless it is a trusted proxy, then the right-most untrusted hop."""

from __future__ import annotations

import pytest

from gateway.http.addresses import client_address, grpc_peer_host, parse_trusted

TRUSTED = parse_trusted("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("127.0.0.1", "203.0.113.9", (), "127.0.0.1"),  # nothing trusted: the header is ignored
        ("192.0.2.1", "203.0.113.9", TRUSTED, "192.0.2.1"),  # an untrusted peer's header too
        ("127.0.0.1", "203.0.113.9", TRUSTED, "203.0.113.9"),
        ("127.0.0.1", None, TRUSTED, "127.0.0.1"),
        # Several hops: proxies append, so the right-most untrusted entry is the client; what
        # the client wrote itself (left of it) is not believed.
        ("127.0.0.1", "198.51.100.7, 203.0.113.9, 10.1.2.3", TRUSTED, "203.0.113.9"),
        ("127.0.0.1", "spoofed, 203.0.113.9", TRUSTED, "203.0.113.9"),
        ("127.0.0.1", "10.0.0.1, 10.0.0.2", TRUSTED, "10.0.0.1"),  # all trusted: the left-most
        ("127.0.0.1", "x" * 500, TRUSTED, "x" * 64),  # bounded before it is logged or keyed on
        (None, None, (), "unknown"),
    ],
)
def test_client_address(
    peer: str | None, forwarded: str | None, trusted: tuple[object, ...], client: str
) -> None:
    assert client_address(peer, forwarded, trusted) == client  # type: ignore[arg-type]


def test_trusted_proxies_must_parse() -> None:
    assert parse_trusted("") == ()
    with pytest.raises(ValueError):
        parse_trusted("nginx")


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:50051", "127.0.0.1"),
        ("ipv6:[::1]:50051", "::1"),
        ("ipv6:%5B::1%5D:50051", "::1"),
        ("unix:/tmp/socket", None),
        ("", None),
    ],
)
def test_grpc_peer_host(peer: str, host: str | None) -> None:
    assert grpc_peer_host(peer) == host
