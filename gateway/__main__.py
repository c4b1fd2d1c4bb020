"""`python -m gateway`: read settings from the environment and serve with uvicorn."""

from __future__ import annotations

import uvicorn
from prometheus_client import start_http_server

from gateway.app import create_app
from gateway.health import Drain
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
    )
    DrainingServer(config, drain, settings.drain_seconds).run()


if __name__ == "__main__":
    main()
