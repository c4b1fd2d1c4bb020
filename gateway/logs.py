"""The gateway's logging: the shared JSON lines, with the request id of the request served."""

from __future__ import annotations

import logging

from gateway.errors import request_id_var
from registry.logs import JsonFormatter
from registry.logs import configure_logging as configure_json_logging


def request_context() -> dict[str, str]:
    return {"request_id": request_id_var.get()}


def configure_logging(level: str) -> None:
    """JSON lines on stdout for every logger, uvicorn's included."""
    configure_json_logging(level, JsonFormatter(request_context))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The gateway logs each request itself, with its id; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
