"""A CSV upload read as a stream, a record at a time, into validated chunks.

The header names the columns (features and id columns, in any order); every cell is text, parsed
by the signature's rules (`registry.cells`); id columns are kept as strings. An empty
cell of a number or boolean is a missing value, taken where its feature takes one (NaN for a
number; a one-column row can spell it only as `""`, since a blank line is skipped).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import IO, Any

from gateway.jobdata.chunks import Chunk, no_rows, quoted, too_many, unknown_columns, where
from kernel.errors import InvalidInput
from registry.cells import cells_parser, cells_problem
from registry.signature import Signature


def csv_chunks(
    body: IO[bytes], signature: Signature, id_columns: list[str], chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    """Validated chunks of the CSV upload in `body`, which is read and left open."""
    # utf-8-sig is UTF-8 that also drops the byte-order mark spreadsheets put before the header.
    text = io.TextIOWrapper(body, encoding="utf-8-sig", newline="")
    try:
        yield from _read_csv(text, signature, id_columns, chunk_size, max_rows)
    finally:
        # Detach so that the wrapper, when collected, does not close the caller's file.
        with contextlib.suppress(ValueError):  # already detached or closed
            text.detach()


def _getter(positions: list[int]) -> Callable[[list[str]], Sequence[str]]:
    """row -> the cells at `positions`, as a sequence (itemgetter of one index gives a scalar)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


def _check_header(
    header: list[str], line: int, signature: Signature, id_columns: list[str]
) -> dict[str, int]:
    """The position of each column named in a valid header; InvalidInput for any other."""
    duplicates = [name for name, count in Counter(header).items() if count > 1]
    if duplicates:
        raise InvalidInput(f"line {line} (header): duplicate column(s) {quoted(duplicates)}")
    position = {name: i for i, name in enumerate(header)}
    missing = [name for name in signature.names if name not in position]
    if missing:
        raise InvalidInput(f"line {line} (header): missing column(s) {quoted(missing)}")
    missing_ids = [name for name in id_columns if name not in position]
    if missing_ids:
        raise InvalidInput(f"line {line} (header): missing id column(s) {quoted(missing_ids)}")
    known = set(signature.names) | set(id_columns)
    unknown = [name for name in header if name not in known]
    if unknown:
        raise unknown_columns(f"line {line} (header)", unknown)
    return position


def _read_csv(
    text: io.TextIOWrapper,
    signature: Signature,
    id_columns: list[str],
    chunk_size: int,
    max_rows: int,
) -> Iterator[Chunk]:
    # strict: a stray or unterminated quote is an error, not silently merged into a field.
    reader = csv.reader(text, strict=True)
    # The line where the record being read starts (a quoted field may span lines): where a
    # parse error is reported, since an unterminated quote only fails at the end of the data.
    last_line = 0
    try:
        header: list[str] | None = next(reader, None)
        while header == []:  # blank lines before the header
            last_line = reader.line_num
            header = next(reader, None)
        if header is None:
            raise no_rows()
        position = _check_header(header, last_line + 1, signature, id_columns)

        # Everything per column is decided once, here; the loop does only the per-row work.
        width = len(header)
        cells_of = _getter([position[name] for name in signature.names])
        parse = cells_parser(signature)
        id_positions = [position[name] for name in id_columns]

        rows: list[list[Any]] = []
        ids: list[list[Any]] | None = [] if id_columns else None
        count = 0
        last_line = reader.line_num
        for row in reader:
            # The record starts on the line after the previous one ended; that line number is
            # only needed for an error, so it is not computed (a new int) for every row.
            previous = last_line
            last_line = reader.line_num
            if not row:  # a blank line
                continue
            if count == max_rows:
                raise too_many(max_rows)
            if len(row) != width:
                raise InvalidInput(
                    f"row {count} (line {previous + 1}): expected {width} fields, got {len(row)}"
                )
            values = parse(cells_of(row))
            if values is None:
                raise _invalid_row(signature, cells_of(row), count, previous + 1)
            rows.append(values)
            if ids is not None:
                ids.append([row[at] for at in id_positions])
            count += 1
            if len(rows) == chunk_size:
                yield Chunk(rows, ids)
                rows = []
                ids = [] if id_columns else None
    # Only reading raises these, for the header as for the data rows.
    except csv.Error:
        raise InvalidInput(f"line {last_line + 1}: not valid CSV") from None
    except UnicodeDecodeError:
        line = max(reader.line_num, 1)
        raise InvalidInput(f"the upload is not valid UTF-8 (near line {line})") from None
    if count == 0:
        raise no_rows()
    if rows:
        yield Chunk(rows, ids)


def _invalid_row(signature: Signature, cells: Sequence[str], index: int, line: int) -> InvalidInput:
    """The slow path: the first cell (in signature order) that does not parse, and why."""
    found = cells_problem(signature, cells)
    if found is None:  # pragma: no cover - the parser refused a row whose every cell fits
        return InvalidInput(f"{where(index, line)}: invalid value")
    name, problem = found
    return InvalidInput(f"{where(index, line)}, column '{name[:64]}': {problem}")
