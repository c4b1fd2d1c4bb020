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
import time
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
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), fields)

    def line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        """The JSON line of one event (what `format` gives for the same record)."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": name,
            "message": message,
        }
        if self.context is not None:
            entry.update(self.context())
        entry.update(fields)
        return orjson.dumps(entry, default=str).decode()


class JsonStreamHandler(logging.StreamHandler[Any]):
    """A StreamHandler that can also write a line formatted elsewhere (see `log_fields`)."""

    def emit_line(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(line + self.terminator)
                self.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": line}))


def log_fields(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """`logger.info(message, extra=fields)`, written straight to the handlers of
    `configure_logging` when they are the only ones on the logger's way to the root: the same
    line without building a LogRecord, whose bookkeeping costs the hot path (docs/benchmarks.md)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handlers = logging.getLogger().handlers
    if not _plain_path(logger) or not handlers or not all(_writes_lines(h) for h in handlers):
        logger.info(message, extra=fields)  # handlers configured some other way
        return
    created = time.time()
    lines: dict[int, str] = {}  # by formatter: usually one for every handler
    for handler in handlers:
        if handler.level > logging.INFO:
            continue
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        line = lines.get(id(formatter))
        if line is None:
            line = formatter.line(created, "INFO", logger.name, message, fields)
            lines[id(formatter)] = line
        handler.emit_line(line)  # type: ignore[attr-defined]


def _plain_path(logger: logging.Logger) -> bool:
    """Nothing between `logger` and the root handles, filters or stops the record."""
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:  # the root has no parent
        if node.handlers or node.filters or not node.propagate:
            return False
        node = node.parent
    return not logging.getLogger().filters


def _writes_lines(handler: logging.Handler) -> bool:
    return (
        hasattr(handler, "emit_line")
        and isinstance(handler.formatter, JsonFormatter)
        and not handler.filters
    )


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
            self.emit_line(self.format(record))
        except Exception:
            self.handleError(record)

    def emit_line(self, text: str) -> None:
        """Append one formatted line, rotating first when it would not fit. The handler's lock
        keeps this process's threads apart (`lockf` only keeps processes apart); `emit` already
        holds it, and it is reentrant."""
        with self.lock:  # type: ignore[union-attr]
            self._append(text)

    def _append(self, text: str) -> None:
        try:
            line = text + self.terminator
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
            self.handleError(logging.makeLogRecord({"msg": text}))

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
    handler = JsonStreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handlers: list[logging.Handler] = [handler]
    if log_file:
        to_file = SharedRotatingFileHandler(log_file, max_bytes, backups)
        to_file.setFormatter(formatter)
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    # Under MLflow's client, urllib3 warns of every refused connection it retries; the caller
    # logs the outcome once (registry unreachable, model not ready), so only its errors stay.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
