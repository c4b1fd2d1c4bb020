"""The gRPC server's settings and address (the server itself runs in tests/integration)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.grpc_server import listen_address
from gateway.settings import GatewaySettings


def test_grpc_is_off_by_default_and_listens_on_the_http_host_unless_told() -> None:
    settings = GatewaySettings(_env_file=None)
    assert settings.grpc_port is None and settings.grpc_host is None
    on = GatewaySettings(_env_file=None, host="0.0.0.0", grpc_port=8001)
    assert listen_address(on.grpc_host or on.host, 8001) == "0.0.0.0:8001"
    assert listen_address("::1", 8001) == "[::1]:8001"


@pytest.mark.parametrize("port", [0, 70000])
def test_a_grpc_port_out_of_range_is_refused(port: int) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None, grpc_port=port)
