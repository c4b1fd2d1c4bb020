"""JSON-lines logging on stdout, shared by every Modelgate process.

Each line: time, level, logger, message, any `extra` fields, and whatever `context()` adds
(the gateway adds the request id). Library modules only name a logger; entrypoints call
`configure_logging`, which may also write the lines to a file rotated by size.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, context: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.context is not None:
            entry.update(self.context())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class SharedRotatingFileHandler(RotatingFileHandler):
    """A size-rotated log file that several processes may write (the worker's pool processes
    inherit it): each write and rotation holds a lock on `<file>.lock`, and a process whose file
    was rotated by another one follows it instead of rotating again."""

    def __init__(self, filename: str, max_bytes: int, backups: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        # POSIX record locks belong to a process, so a forked child sharing this descriptor
        # still waits for its parent's lock.
        self._lock_file = open(self.baseFilename + ".lock", "a")  # noqa: SIM115

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            size = len(line.encode("utf-8"))
            fcntl.lockf(self._lock_file, fcntl.LOCK_EX)
            try:
                stream = self._current_stream()
                written = os.fstat(stream.fileno()).st_size
                if written and written + size > self.maxBytes:
                    self.doRollover()
                    stream = self._current_stream()
                stream.write(line)
                stream.flush()
            finally:
                fcntl.lockf(self._lock_file, fcntl.LOCK_UN)
        except Exception:
            self.handleError(record)

    def _current_stream(self) -> Any:
        """The open file, reopened when another process has rotated it away meanwhile."""
        if self.stream is not None:
            try:
                moved = os.stat(self.baseFilename).st_ino != os.fstat(self.stream.fileno()).st_ino
            except FileNotFoundError:
                moved = True
            if moved:
                self.stream.close()
                self.stream = None
        if self.stream is None:
            self.stream = self._open()
        return self.stream

    def close(self) -> None:
        super().close()
        self._lock_file.close()


def configure_logging(
    level: str,
    formatter: logging.Formatter | None = None,
    log_file: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> None:
    """Route every logger to one JSON handler on stdout and, when `log_file` is given, to that
    file too, rotated at `max_bytes` with `backups` older files kept."""
    formatter = formatter or JsonFormatter()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handlers: list[logging.Handler] = [handler]
    if log_file:
        to_file = SharedRotatingFileHandler(log_file, max_bytes, backups)
        to_file.setFormatter(formatter)
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
