"""`python -m gateway`: read settings from the environment and serve with uvicorn."""

from __future__ import annotations

import uvicorn
from prometheus_client import start_http_server

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    if settings.metrics_port:
        # Its own port, which nginx and the Ingress never expose.
        start_http_server(settings.metrics_port, addr=settings.host)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
