"""The gateway's logging: the shared JSON lines, with the request id of the request served."""

from __future__ import annotations

import logging

from gateway.http.errors import request_id_var
from kernel.logs import JsonFormatter
from kernel.logs import configure_logging as configure_json_logging


def request_context() -> dict[str, str]:
    return {"request_id": request_id_var.get()}


def configure_logging(
    level: str, log_file: str | None = None, max_bytes: int = 10 * 1024 * 1024, backups: int = 5
) -> None:
    """JSON lines on stdout (and in `log_file`, when given) for every logger, uvicorn's too."""
    configure_json_logging(level, JsonFormatter(request_context), log_file, max_bytes, backups)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The gateway logs each request itself, with its id; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
