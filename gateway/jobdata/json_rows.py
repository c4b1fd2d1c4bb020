"""A JSON upload, `{"instances": [...], "ids": [...]}` or `{"records": [...]}`, in validated chunks.

The document is never parsed whole. A first pass (`json_outline`) checks its shape, counts its
lists and bounds every row and value; then its rows are built one at a time by ijson's C
backend from the spooled file, `ids` read beside `instances` from a second position in the same
file (so `ids` may come before or after them), and checked a chunk at a time, so that a bad row
fails after the chunks before it. Numbers are JSON's, as orjson reads them: an integer stays an
`int`, anything with a fraction or an exponent is a `float`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import ijson
from ijson.backends import yajl2_c  # the C backend by name: never the slow Python one

from gateway.jobdata.chunks import (
    JSON_SCALARS,
    Chunk,
    ChunkBuilder,
    id_too_long,
    longer_than,
    no_rows,
    quoted,
)
from gateway.jobdata.json_outline import Outline, read_outline
from gateway.jobdata.records import RowChecker
from kernel.errors import InvalidInput

#: Bytes fed to the parser at a time while rows are built.
ROWS_BLOCK_BYTES = 64 * 1024
FIELDS = ("instances", "records", "ids")


def json_chunks(
    body: IO[bytes], checker: RowChecker, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    """Validated chunks of the JSON upload in `body` (a seekable file, read from where it is);
    every problem raises while iterating."""
    start = body.tell()
    outline = read_outline(body, checker.limits.line_bytes, max_rows)
    field = _check_outline(outline, checker)
    if field == "records":
        yield from _record_chunks(body, start, checker, chunk_size)
    else:
        yield from _instance_chunks(body, start, checker, chunk_size, "ids" in outline.keys)


def _check_outline(outline: Outline, checker: RowChecker) -> str:
    """The field that holds the rows, once the document's shape is one a job takes."""
    keys = outline.keys
    if ("instances" in keys) == ("records" in keys):
        raise InvalidInput("the body must be an object with either 'instances' or 'records'")
    twice = [key for key, count in Counter(keys).items() if count > 1]
    if twice:
        raise InvalidInput(f"field(s) {quoted(twice)} given more than once")
    unknown = [key for key in keys if key not in FIELDS]
    if unknown:
        raise InvalidInput(f"unknown field(s) {quoted(unknown)}")
    field = "records" if "records" in keys else "instances"
    if field == "records" and "ids" in keys:
        raise InvalidInput("'ids' goes with 'instances'; records carry their id columns")
    if field == "instances" and checker.id_columns:
        raise InvalidInput(
            "id_columns go with records, CSV and NDJSON; send 'ids' with 'instances'"
        )
    if field not in outline.lists:
        raise InvalidInput(f"'{field}' must be a list of rows")
    rows = outline.entries[field]
    if not rows:
        raise no_rows()
    if "ids" in keys and ("ids" not in outline.lists or outline.entries["ids"] != rows):
        raise InvalidInput("'ids' must be a list with one entry per instance")
    return field


def _items(body: IO[bytes], start: int, prefix: str) -> Iterator[Any]:
    """The values at `prefix` (ijson's path: `records.item` is each entry of `records`), built
    one at a time from `body` at its own position, so that two of these can take turns."""
    found = ijson.sendable_list()
    parser = yajl2_c.items_coro(found, prefix, use_float=True)
    offset = start
    while True:
        body.seek(offset)
        block = body.read(ROWS_BLOCK_BYTES)
        if not block:
            break
        offset += len(block)
        parser.send(block)
        if found:
            yield from found
            found.clear()
    parser.close()
    yield from found


def _record_chunks(
    body: IO[bytes], start: int, checker: RowChecker, chunk_size: int
) -> Iterator[Chunk]:
    with_ids = bool(checker.id_columns)
    sized = bool(checker.text_features or with_ids)
    chunks = ChunkBuilder(chunk_size, with_ids)
    add = chunks.add
    for index, record in enumerate(_items(body, start, "records.item")):
        values, row_ids = checker.record(record, index, None)
        if sized:
            checker.check_sizes(values, row_ids, index, None)
        if (chunk := add(values, row_ids)) is not None:
            yield chunk
    yield from chunks.rest()


def _instance_chunks(
    body: IO[bytes], start: int, checker: RowChecker, chunk_size: int, with_ids: bool
) -> Iterator[Chunk]:
    entries = _items(body, start, "ids.item") if with_ids else None
    sized = bool(checker.text_features)
    id_bytes = checker.limits.id_bytes
    width: int | None = None
    row_ids: list[Any] | None = None
    chunks = ChunkBuilder(chunk_size, with_ids)
    add = chunks.add
    for index, row in enumerate(_items(body, start, "instances.item")):
        if entries is not None:
            # The outline counted one entry per instance.
            row_ids = _id_values(next(entries), index, width, id_bytes)
            width = len(row_ids)
        values = checker.instance(row, index)
        if sized:
            checker.check_sizes(row, None, index, None)
        if (chunk := add(values, row_ids)) is not None:
            yield chunk
    yield from chunks.rest()


def _id_values(entry: Any, index: int, width: int | None, id_bytes: int) -> list[Any]:
    """An `ids` entry of an instances body: one scalar or a list of scalars, made a list."""
    values = entry if type(entry) is list else [entry]
    if not values or not all(isinstance(v, JSON_SCALARS) for v in values):
        raise InvalidInput(
            f"row {index}: an id must be a string, number, boolean or null, or a list of them"
        )
    if width is not None and len(values) != width:
        raise InvalidInput(f"row {index}: expected {width} id value(s), got {len(values)}")
    for value in values:
        if type(value) is str and longer_than(value, id_bytes):
            raise id_too_long(f"row {index}, id", id_bytes)
    return values
