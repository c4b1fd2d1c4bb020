"""A JSON upload, `{"instances": [...], "ids": [...]}` or `{"records": [...]}`, in validated chunks.

A JSON body is one document, so it is parsed whole (bounded by the job byte limit); its rows are
then checked a chunk at a time, so that a bad row fails after the chunks before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from gateway.http.payload import NAN_LITERAL, is_nan_literal
from gateway.jobdata.chunks import JSON_SCALARS, Chunk, no_rows, quoted, too_many
from gateway.jobdata.records import RowChecker, is_out_of_range
from kernel.errors import InvalidInput


def json_chunks(
    body: IO[bytes], checker: RowChecker, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    """Validated chunks of the JSON upload in `body`; every problem raises while iterating."""
    data = body.read()  # one JSON document: parsed whole, bounded by the job byte limit
    if not data.strip():
        raise no_rows()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if is_out_of_range(exc):
            raise InvalidInput("a number is out of range") from None
        if is_nan_literal(exc):
            raise InvalidInput(NAN_LITERAL) from None
        raise InvalidInput("the body is not valid JSON") from None
    del data
    if type(document) is not dict or ("instances" in document) == ("records" in document):
        raise InvalidInput("the body must be an object with either 'instances' or 'records'")
    unknown = [str(key) for key in document if key not in ("instances", "records", "ids")]
    if unknown:
        raise InvalidInput(f"unknown field(s) {quoted(unknown)}")
    if "records" in document:
        if "ids" in document:
            raise InvalidInput("'ids' goes with 'instances'; records carry their id columns")
        yield from _record_chunks(document["records"], checker, chunk_size, max_rows)
        return
    if checker.id_columns:
        raise InvalidInput(
            "id_columns go with records, CSV and NDJSON; send 'ids' with 'instances'"
        )
    yield from _instance_chunks(document, checker, chunk_size, max_rows)


def _record_chunks(
    records: Any, checker: RowChecker, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    records = _rows_list(records, "records", max_rows)
    with_ids = bool(checker.id_columns)
    for start in range(0, len(records), chunk_size):
        rows: list[list[Any]] = []
        ids: list[list[Any]] | None = [] if with_ids else None
        for index in range(start, min(start + chunk_size, len(records))):
            values, row_ids = checker.record(records[index], index, None)
            rows.append(values)
            if ids is not None and row_ids is not None:
                ids.append(row_ids)
        yield Chunk(rows, ids)


def _instance_chunks(
    document: dict[str, Any], checker: RowChecker, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    instances = _rows_list(document["instances"], "instances", max_rows)
    all_ids = _normalise_ids(document["ids"], len(instances)) if "ids" in document else None
    for start in range(0, len(instances), chunk_size):
        end = min(start + chunk_size, len(instances))
        rows = [checker.instance(instances[index], index) for index in range(start, end)]
        yield Chunk(rows, None if all_ids is None else all_ids[start:end])


def _normalise_ids(ids: Any, rows: int) -> list[list[Any]]:
    """`ids` of an instances body: one scalar or list of scalars per row, each made a list."""
    if type(ids) is not list or len(ids) != rows:
        raise InvalidInput("'ids' must be a list with one entry per instance")
    out: list[list[Any]] = []
    width: int | None = None
    for index, entry in enumerate(ids):
        values = entry if type(entry) is list else [entry]
        if not values or not all(isinstance(v, JSON_SCALARS) for v in values):
            raise InvalidInput(
                f"row {index}: an id must be a string, number, boolean or null, or a list of them"
            )
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise InvalidInput(f"row {index}: expected {width} id value(s), got {len(values)}")
        out.append(values)
    return out


def _rows_list(rows: Any, field: str, max_rows: int) -> list[Any]:
    if type(rows) is not list:
        raise InvalidInput(f"'{field}' must be a list of rows")
    if not rows:
        raise no_rows()
    if len(rows) > max_rows:
        raise too_many(max_rows)
    return rows
