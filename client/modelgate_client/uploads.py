"""Job upload bodies that can be sent again from the start on a retry, never whole in memory.

a path               streamed from disk; format by suffix (.csv, .ndjson, .jsonl, .json)
a binary file        streamed from where it stands (a file that cannot seek is spooled)
a DataFrame          rendered as CSV (or NDJSON) block by block, again on each try
a list of dicts      NDJSON, rendered again on each try; a list of lists: JSON instances
any other iterable   of dicts: written once as NDJSON to a temporary file, then streamed
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

from modelgate_client import frames
from modelgate_client._wire import encode_json
from modelgate_client.errors import UnsupportedFormat

#: Media type of each format.
MEDIA_TYPES = {"csv": "text/csv", "ndjson": "application/x-ndjson", "json": "application/json"}
#: Format of each file suffix (uploads and downloads).
SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json"}
BLOCK_BYTES = 1024 * 1024


def normal_format(format: str) -> str:
    """ "csv", "ndjson" ("jsonl" is the same) or "json"; anything else is UnsupportedFormat."""
    name = format.lower().lstrip(".")
    name = "ndjson" if name == "jsonl" else name
    if name not in MEDIA_TYPES:
        raise UnsupportedFormat(f"unknown format {format!r}; use csv, ndjson, jsonl or json")
    return name


def format_for_path(path: Any, format: Optional[str] = None) -> str:
    """The format of a file: `format` when given, else by its suffix."""
    if format is not None:
        return normal_format(format)
    found = SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise UnsupportedFormat(
            f"cannot tell the format of {Path(path).name!r} from its suffix; "
            f"use one of {', '.join(SUFFIXES)} (or give the format)"
        )
    return found


class FileBody:
    """A file sent from `start` on every pass; closed with the body when it is `owned`."""

    def __init__(self, file: IO[bytes], content_type: str, owned: bool) -> None:
        self.file = file
        self.content_type = content_type
        self.owned = owned
        self.start = file.tell()
        self.size: Optional[int] = file.seek(0, os.SEEK_END) - self.start
        file.seek(self.start)

    def blocks(self) -> Iterator[bytes]:
        self.file.seek(self.start)
        while True:
            block = self.file.read(BLOCK_BYTES)
            if not block:
                return
            yield block

    def close(self) -> None:
        if self.owned:
            self.file.close()


class GeneratedBody:
    """A body rendered again from its source on every pass."""

    def __init__(self, render: Callable[[], Iterator[bytes]], content_type: str) -> None:
        self.render = render
        self.content_type = content_type
        self.size: Optional[int] = None

    def blocks(self) -> Iterator[bytes]:
        return self.render()

    def close(self) -> None:
        pass


#: An upload body; close it once the submission is done.
Upload = Union[FileBody, GeneratedBody]


def ndjson_blocks(records: Iterable[Any]) -> Iterator[bytes]:
    """Records as NDJSON in blocks of about BLOCK_BYTES."""
    buffer: list[bytes] = []
    size = 0
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TypeError(f"record {index} is a {type(record).__name__}, not a dict")
        line = encode_json(dict(record)) + b"\n"
        buffer.append(line)
        size += len(line)
        if size >= BLOCK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _spooled(blocks: Iterable[bytes]) -> IO[bytes]:
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by its FileBody
    try:
        for block in blocks:
            spool.write(block)
        spool.flush()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _file_body(file: IO[bytes], format: str, owned: bool) -> FileBody:
    if getattr(file, "seekable", lambda: False)():
        return FileBody(file, MEDIA_TYPES[format], owned)
    spool = _spooled(iter(lambda: file.read(BLOCK_BYTES), b""))
    if owned:
        file.close()
    return FileBody(spool, MEDIA_TYPES[format], owned=True)


def make_upload(source: Any, format: Optional[str] = None) -> Upload:
    """The upload body of a job source (see the module's docstring); the caller closes it."""
    if isinstance(source, (str, os.PathLike)):
        kind = format_for_path(source, format)
        return _file_body(open(source, "rb"), kind, owned=True)  # noqa: SIM115 - body closes
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        if format is None and not isinstance(name, str):
            raise UnsupportedFormat("give the format of a file object without a name")
        kind = format_for_path(name, format)
        return _file_body(source, kind, owned=False)
    if frames.is_frame(source):
        kind = normal_format(format or "csv")
        if kind == "json":
            raise UnsupportedFormat("a DataFrame is sent as csv or ndjson")
        render = frames.csv_blocks if kind == "csv" else frames.ndjson_blocks
        return GeneratedBody(lambda: render(source), MEDIA_TYPES[kind])
    if isinstance(source, (bytes, bytearray, Mapping)):
        raise TypeError("a job source is a path, a binary file, a DataFrame or records")
    if format is not None and normal_format(format) != (
        "json" if _is_instances(source) else "ndjson"
    ):
        raise UnsupportedFormat("records are sent as ndjson, lists of values as json")
    if _is_instances(source):
        body = encode_json({"instances": [list(r) for r in source]})
        return GeneratedBody(lambda: iter([body]), MEDIA_TYPES["json"])
    if isinstance(source, (list, tuple)):
        return GeneratedBody(lambda: ndjson_blocks(source), MEDIA_TYPES["ndjson"])
    if not isinstance(source, Iterable):
        raise TypeError("a job source is a path, a binary file, a DataFrame or records")
    return FileBody(_spooled(ndjson_blocks(source)), MEDIA_TYPES["ndjson"], owned=True)


def _is_instances(source: Any) -> bool:
    return (
        isinstance(source, (list, tuple)) and bool(source) and isinstance(source[0], (list, tuple))
    )
