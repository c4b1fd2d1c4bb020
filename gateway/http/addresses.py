"""The client's address: the peer's, or, behind trusted proxies, the one they forwarded.

No proxy is trusted by default (MODELGATE_TRUSTED_PROXIES is empty): `X-Forwarded-For` is
then ignored, since any client can send it. With proxies trusted (nginx in compose and
Kubernetes), the header is read from the right, skipping trusted addresses, and the first
untrusted one is the client: each proxy appends the address it received from, so only the
right-most entries were written by proxies we trust; everything left of them is the client's.
One rule for HTTP and gRPC (whose peer comes as `ipv4:1.2.3.4:port`).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(spec: str) -> tuple[Network, ...]:
    """`10.0.0.5, 172.28.0.0/16, ::1` as networks; raises ValueError on anything else."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    )


def _is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The address that counts for logs and the failed-authentication throttle."""
    if not peer:
        return "unknown"
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop and not _is_trusted(hop, trusted):
            return hop[:64]  # a client-written value: bounded before it is logged or keyed on
    # Every hop is a trusted proxy: the left-most is the closest to the client we know.
    return next((hop for hop in hops if hop), peer)[:64]


def grpc_peer_host(peer: str | None) -> str | None:
    """`ipv4:127.0.0.1:5000` / `ipv6:[::1]:5000` (grpc's `context.peer()`) as the host."""
    if not peer:
        return None
    kind, _, rest = urllib.parse.unquote(peer).partition(":")  # grpc escapes [ and ]
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        host = rest.rpartition(":")[0]
        return host.strip("[]") or None
    return None  # unix sockets and the like carry no address
