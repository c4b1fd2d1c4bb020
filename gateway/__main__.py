"""`python -m gateway`: read settings from the environment and serve with uvicorn."""

from __future__ import annotations

import uvicorn
from prometheus_client import start_http_server

from gateway.app import create_app
from gateway.health import Drain
from gateway.http.edge import EdgeLimits, with_limits
from gateway.logs import configure_logging
from gateway.server import DrainingServer
from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(
        settings.log_level,
        settings.log_file,
        settings.log_file_max_bytes,
        settings.log_file_backups,
    )
    if settings.metrics_port:
        # Its own port, which nginx and the Ingress never expose.
        start_http_server(settings.metrics_port, addr=settings.host)
    drain = Drain()
    config = uvicorn.Config(
        create_app(settings, drain=drain),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        http=with_limits(
            EdgeLimits(
                line_bytes=settings.max_header_line_bytes,
                header_bytes=settings.max_header_bytes,
                headers=settings.max_headers,
                header_seconds=settings.header_timeout_seconds,
                max_connections=settings.max_connections,
            )
        ),
        timeout_keep_alive=settings.keep_alive_seconds,
        # The client address is the gateway's to decide (MODELGATE_TRUSTED_PROXIES, read by
        # the request middleware): uvicorn's default trusts X-Forwarded-For from 127.0.0.1,
        # where under `make up` every client is.
        proxy_headers=False,
    )
    DrainingServer(config, drain, settings.drain_seconds).run()


if __name__ == "__main__":
    main()
