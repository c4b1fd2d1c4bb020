"""JSON log lines, and the optional log file rotated by size, shared by processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.logs import SharedRotatingFileHandler, configure_logging, log_fields

MAX_BYTES = 2048
LINES = 1000


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was (configure_logging replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _files(path: Path) -> list[Path]:
    """The log file and its backups, newest first."""
    backups = sorted(path.parent.glob(path.name + ".[0-9]*"), key=lambda p: int(p.suffix[1:]))
    return [path, *backups]


def _lines(files: list[Path]) -> list[dict[str, object]]:
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_the_file_gets_the_same_json_lines_as_stdout(
    root_logger: logging.Logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "modelgate.log"
    configure_logging("INFO", log_file=str(path), max_bytes=MAX_BYTES, backups=2)
    logging.getLogger("test.logs").info("job finished", extra={"job_id": "j1", "rows": 3})
    (line,) = path.read_text().splitlines()
    assert json.loads(line) == json.loads(capsys.readouterr().out.splitlines()[-1])
    assert json.loads(line)["job_id"] == "j1"


def test_rotation_happens_at_the_size_and_keeps_the_backups(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    path = tmp_path / "modelgate.log"
    configure_logging("INFO", log_file=str(path), max_bytes=MAX_BYTES, backups=3)
    logger = logging.getLogger("test.logs")
    for n in range(200):  # about 100 bytes a line: ten files' worth
        logger.info("line %04d", n)
    files = _files(path)
    assert [f.name for f in files] == [
        "modelgate.log",
        "modelgate.log.1",
        "modelgate.log.2",
        "modelgate.log.3",
    ]
    for f in files:
        assert 0 < f.stat().st_size <= MAX_BYTES, f.name
    # A rotated file is full: the next line would not have fitted.
    line_size = len(files[0].read_text().splitlines()[0]) + 1
    assert files[1].stat().st_size > MAX_BYTES - line_size
    # Oldest first across the backups, newest last in the current file, none lost in between.
    numbers = [int(str(entry["message"]).split()[1]) for entry in _lines(files[::-1])]
    assert numbers == list(range(numbers[0], 200))
    assert numbers[0] > 0  # older lines went with the dropped backups


def _write_lines(start: Any, worker: int, count: int) -> None:
    logger = logging.getLogger("test.shared")
    start.wait(10)  # all at once, so that writes and rotations interleave
    for n in range(count):
        logger.info("worker %d line %d", worker, n)


def test_processes_sharing_the_file_lose_and_mix_no_lines(tmp_path: Path) -> None:
    """As the worker's pool processes do: a handler made before the fork, used by each child."""
    path = tmp_path / "worker.log"
    handler = SharedRotatingFileHandler(str(path), MAX_BYTES, backups=1000)
    handler.setFormatter(logging.Formatter('{"message": "%(message)s"}'))
    logger = logging.getLogger("test.shared")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        context = multiprocessing.get_context("fork")
        start = context.Event()
        children = [
            context.Process(target=_write_lines, args=(start, worker, LINES)) for worker in range(3)
        ]
        for child in children:
            child.start()
        start.set()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = _files(path)
    assert len(files) > 10  # they rotated many times
    for f in files:
        assert f.stat().st_size <= MAX_BYTES, f.name
    seen = sorted(str(entry["message"]) for entry in _lines(files))  # every line parses
    expected = sorted(f"worker {w} line {n}" for w in range(3) for n in range(LINES))
    assert seen == expected


def test_log_fields_writes_what_logger_info_writes_to_stdout_and_the_file(
    tmp_path: Path, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", log_file=str(tmp_path / "m.log"))
    logger = logging.getLogger("modelgate.test.access")
    fields = {"status": 200, "route": "/v1/models/{model}/predict", "api_key_id": "k1"}
    logger.info("request", extra=fields)
    log_fields(logger, "request", fields)
    logger.setLevel(logging.WARNING)
    log_fields(logger, "request", {"status": 500})  # below the level: nothing
    logger.setLevel(logging.NOTSET)
    for lines in (
        [json.loads(line) for line in capsys.readouterr().out.splitlines()],
        _lines([tmp_path / "m.log"]),
    ):
        assert len(lines) == 2
        for line in lines:
            assert line.pop("ts")
        assert (
            lines[0]
            == lines[1]
            == {
                "level": "INFO",
                "logger": "modelgate.test.access",
                "message": "request",
                **fields,
            }
        )


def test_log_fields_goes_through_logging_when_other_handlers_listen(
    root_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("INFO")
    root_logger.addHandler(caplog.handler)  # a handler that is not configure_logging's
    log_fields(logging.getLogger("modelgate.test.access"), "request", {"status": 201})
    assert [r.status for r in caplog.records] == [201]  # type: ignore[attr-defined]


def test_log_fields_respects_a_logger_on_the_way_that_handles_or_stops_records(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    parent = logging.getLogger("modelgate.test.quiet")
    parent.propagate = False  # its records never reach the root's handlers
    try:
        log_fields(logging.getLogger("modelgate.test.quiet.access"), "request", {"status": 200})
        assert capsys.readouterr().out == ""
    finally:
        parent.propagate = True
