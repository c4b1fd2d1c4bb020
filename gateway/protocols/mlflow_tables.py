"""The table bodies of MLflow's scoring protocol (CSV, Parquet), and how every body's columns
are matched to a signature's.

A CSV body's cells are parsed by the signature's CSV rules (registry/cells.py, as batch-job
uploads are); a Parquet file's values are read with pyarrow, which only this format imports.
Columns the signature lacks are ignored, as MLflow's schema enforcement ignores them; a missing
number (an empty cell, a Parquet null or NaN) comes back as null, which the data plane reads as
a missing value (refused unless the model takes it). Messages never echo a value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from gateway.http.errors import TooManyRows, UnsupportedMediaType
from kernel.errors import InvalidInput
from registry.cells import cells_parser, cells_problem
from registry.signature import Signature, quote_names


def too_many(rows: int, limit: int) -> TooManyRows:
    return TooManyRows(
        f"{rows} rows exceed the synchronous limit of {limit}; submit them as a batch job"
    )


def csv_rows(body: bytes, signature: Signature, max_rows: int) -> list[list[Any]]:
    """A CSV body with a header: its cells parsed by the signature's CSV rules, no more than
    `max_rows` of them (the parse stops at the first row past it)."""
    try:
        # utf-8-sig: UTF-8, without the byte-order mark spreadsheets put before the header.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV body is not valid UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[Any]] = []
    try:
        header = next((line for line in reader if line), None)
        if header is None:
            raise InvalidInput("the CSV body has no header")
        positions = column_positions(header, signature, "the CSV header")
        cells_of = getter(positions)
        parse = cells_parser(signature)
        width = len(header)
        for line in reader:
            if not line:  # a blank line
                continue
            if len(rows) == max_rows:
                raise too_many(max_rows + 1, max_rows)
            if len(line) != width:
                raise InvalidInput(f"CSV row {len(rows)}: expected {width} fields, got {len(line)}")
            cells = cells_of(line)
            values = parse(cells)
            if values is None:
                name, problem = cells_problem(signature, cells) or ("?", "invalid value")
                raise InvalidInput(f"CSV row {len(rows)}, column '{name[:64]}': {problem}")
            rows.append(values)
    except csv.Error:
        raise InvalidInput(f"the body is not valid CSV (near line {reader.line_num})") from None
    if not rows:
        raise InvalidInput("the CSV body has no rows")
    # The cells' missing numbers are NaN; the data plane reads a missing value as null.
    return [nan_as_null(row) for row in rows] if signature.nan_at else rows


def parquet_rows(body: bytes, signature: Signature, max_rows: int) -> list[list[Any]]:
    """A Parquet file's columns, read with pyarrow (imported here: only this format needs it).

    Its row count comes from the file's metadata, and only the signature's columns are read:
    a small, highly compressed file may hold far more rows, or a far larger column, than its
    size says, and none of that is decompressed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # an image built without it: the other formats still work
        raise UnsupportedMediaType(
            "this gateway reads no Parquet (pyarrow is not installed)"
        ) from None
    broken = (pa.ArrowException, OSError, ValueError, TypeError, OverflowError)
    try:
        file = pq.ParquetFile(pa.BufferReader(body))
        names = file.schema_arrow.names
    except broken:
        raise InvalidInput("the body is not a valid Parquet file") from None
    positions = column_positions(names, signature, "the Parquet columns")
    count = file.metadata.num_rows
    if count == 0:
        raise InvalidInput("the Parquet body has no rows")
    if count > max_rows:
        raise too_many(count, max_rows)
    wanted = [names[p] for p in positions]
    try:
        table = file.read(columns=wanted)
        columns = []
        for name in wanted:
            values = table.column(name).to_pylist()
            if pa.types.is_floating(table.schema.field(name).type):
                values = nan_as_null(values)  # pandas' missing value
            columns.append(values)
    except broken:  # a value pyarrow cannot give as Python (a date out of range, ...)
        raise InvalidInput("a Parquet column cannot be read as the model's values") from None
    return [list(row) for row in zip(*columns, strict=True)]


def column_positions(columns: Sequence[Any], signature: Signature, where: str) -> list[int]:
    """Where each feature's column is in `columns`; other columns are ignored (as MLflow's
    schema enforcement ignores them), a duplicate or a missing one is refused."""
    position: dict[str, int] = {}
    duplicates = []
    for i, name in enumerate(columns):
        if type(name) is not str:
            raise InvalidInput(f"{where}: column names must be strings")
        if name in position:
            duplicates.append(name)
        position[name] = i
    if duplicates:
        raise InvalidInput(f"{where}: duplicate column(s) {quote_names(duplicates[:3])}")
    missing = [name for name in signature.names if name not in position]
    if missing:
        raise InvalidInput(f"{where}: missing column(s) {quote_names(missing[:5])}")
    return [position[name] for name in signature.names]


def getter(positions: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """row -> the values at `positions`, always a sequence (itemgetter of one is a scalar)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


def nan_as_null(values: list[Any]) -> list[Any]:
    return [None if v != v else v for v in values]
