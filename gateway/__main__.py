"""`python -m gateway`: read settings from the environment and serve with uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
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
