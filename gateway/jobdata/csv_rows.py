"""A CSV upload read as a stream, a record at a time, into validated chunks.

The header names the columns (features and id columns, in any order); every cell is text, parsed
by the signature's rules (`registry.cells`); id columns are kept as strings. An empty
cell of a number or boolean is a missing value, taken where its feature takes one (NaN for a
number; a one-column row can spell it only as `""`, since a blank line is skipped).

The upload is read in blocks (`lines.upload_lines`), so no line is held whole past
`UploadLimits.line_bytes`, nor a record whose quoted cell spans lines; cells past `cell_bytes`
and id cells past `id_bytes` are refused by name. Python's csv module reads no field longer than
its `field_size_limit` (128 KiB): past it, a cell is refused by that bound (with the id limit's
name for an id cell), which only a line limit above it lets a record reach.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import IO

from gateway.http.errors import BodyTooLarge
from gateway.jobdata.chunks import (
    Chunk,
    ChunkBuilder,
    UploadLimits,
    cell_too_long,
    id_too_long,
    longer_than,
    no_rows,
    quoted,
    too_many,
    unknown_columns,
    where,
)
from gateway.jobdata.lines import content_bytes, upload_blocks
from kernel.errors import InvalidInput
from registry.cells import cells_parser, cells_problem
from registry.signature import Signature

#: The byte-order mark spreadsheets put before the header (what utf-8-sig drops).
BOM = b"\xef\xbb\xbf"
#: A CSV field as csv reads one (the excel dialect): quoted, a quote within doubled, or not.
QUOTED = re.compile(r'"(?:[^"]+|"")*"')
UNQUOTED = re.compile(r"[^,]*")


def csv_chunks(
    body: IO[bytes],
    signature: Signature,
    id_columns: list[str],
    chunk_size: int,
    max_rows: int,
    limits: UploadLimits,
) -> Iterator[Chunk]:
    """Validated chunks of the CSV upload in `body`, which is read and left open."""
    # The bytes of the record being read, summed over its lines, reset after each record.
    record = [0]
    # The lines of the record being read, kept only when it may pass csv's bound on a field:
    # to name the cell that did.
    held: list[bytes] | None = [] if limits.line_bytes > csv.field_size_limit() else None
    blocks = upload_blocks(body, limits.line_bytes, universal=True)
    text = _text_lines(blocks, record, held, limits)
    yield from _read_csv(text, record, held, signature, id_columns, chunk_size, max_rows, limits)


def _text_lines(
    blocks: Iterator[list[bytes]],
    record: list[int],
    held: list[bytes] | None,
    limits: UploadLimits,
) -> Iterator[str]:
    """Each line as text (the first without its byte-order mark), its bytes added to `record`
    when they matter: a record whose quoted cell spans lines is bounded as one line is, and a
    record longer than the smaller cell limit has its cells measured (`_read_csv`)."""
    short = min(limits.cell_bytes, limits.id_bytes)
    limit = limits.line_bytes
    number = 0  # lines handed out
    start = 1  # the first line of the record being read
    for lines in blocks:
        if number == 0 and lines[0].startswith(BOM):
            lines[0] = lines[0][len(BOM) :]
        # The common block, decoded at once: no record open, no quote (so no record spans a
        # line) and no line long enough to hold a cell past a limit.
        if record[0] == 0 and max(map(len, lines)) <= short and b'"' not in b"".join(lines):
            try:
                decoded = list(map(bytes.decode, lines))
            except UnicodeDecodeError:
                decoded = [_decode(line, number + at + 1) for at, line in enumerate(lines)]
            number += len(lines)
            yield from decoded
            continue
        for line in lines:
            number += 1
            if not record[0]:
                start = number  # the first line of a record (each line alone is bounded)
                if held is not None:
                    held.clear()
            spent = record[0] + len(line)
            if spent > limit and spent - len(line) + content_bytes(line) > limit:
                raise BodyTooLarge(
                    f"lines {start} to {number} are one record (a quoted cell spans them) "
                    f"longer than {limit} bytes, the most one line of an upload may be "
                    "(MODELGATE_MAX_JOB_LINE_BYTES)"
                )
            record[0] = spent
            if held is not None:
                held.append(line)
            yield _decode(line, number)


def _decode(line: bytes, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the upload is not valid UTF-8 (near line {number})") from None


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
    text: Iterator[str],
    record: list[int],
    held: list[bytes] | None,
    signature: Signature,
    id_columns: list[str],
    chunk_size: int,
    max_rows: int,
    limits: UploadLimits,
) -> Iterator[Chunk]:
    # strict: a stray or unterminated quote is an error, not silently merged into a field.
    reader = csv.reader(text, strict=True)
    # The line where the record being read starts (a quoted field may span lines): where a
    # parse error is reported, since an unterminated quote only fails at the end of the data.
    last_line = 0
    count = 0
    header: list[str] | None = None
    try:
        header = next(reader, None)
        while header == []:  # blank lines before the header
            record[0] = 0
            last_line = reader.line_num
            header = next(reader, None)
        if header is None:
            raise no_rows()
        position = _check_header(header, last_line + 1, signature, id_columns)
        record[0] = 0

        # Everything per column is decided once, here; the loop does only the per-row work.
        width = len(header)
        cells_of = _getter([position[name] for name in signature.names])
        parse = cells_parser(signature)
        id_positions = [position[name] for name in id_columns]
        # A record no longer than this has no cell past a limit: only longer ones are looked at.
        short = min(limits.cell_bytes, limits.id_bytes)
        is_id = [at in id_positions for at in range(width)]

        chunks = ChunkBuilder(chunk_size, bool(id_columns))
        add = chunks.add
        last_line = reader.line_num
        for row in reader:
            # The record starts on the line after the previous one ended; that line number is
            # only needed for an error, so it is not computed (a new int) for every row.
            previous = last_line
            last_line = reader.line_num
            size = record[0]
            record[0] = 0
            if not row:  # a blank line
                continue
            if count == max_rows:
                raise too_many(max_rows)
            if len(row) != width:
                raise InvalidInput(
                    f"row {count} (line {previous + 1}): expected {width} fields, got {len(row)}"
                )
            if size > short:
                _check_cell_sizes(row, header, is_id, limits, where(count, previous + 1))
            values = parse(cells_of(row))
            if values is None:
                raise _invalid_row(signature, cells_of(row), count, previous + 1)
            count += 1
            row_ids = [row[at] for at in id_positions] if id_positions else None
            if (chunk := add(values, row_ids)) is not None:
                yield chunk
    # Only reading raises these, for the header as for the data rows.
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):  # csv's own bound, past ours
            line = last_line + 1
            raise _past_csv_bound(held, header, id_columns, limits, count, line) from None
        raise InvalidInput(f"line {last_line + 1}: not valid CSV") from None
    if count == 0:
        raise no_rows()
    yield from chunks.rest()


def _check_cell_sizes(
    row: list[str], header: list[str], is_id: list[bool], limits: UploadLimits, prefix: str
) -> None:
    """Refuse the first cell of `row` past its limit: an id column's, or any other cell's."""
    for name, cell, an_id in zip(header, row, is_id, strict=True):
        if an_id and longer_than(cell, limits.id_bytes):
            raise id_too_long(f"{prefix}, id column '{name[:64]}'", limits.id_bytes)
        if not an_id and longer_than(cell, limits.cell_bytes):
            raise cell_too_long(f"{prefix}, column '{name[:64]}'", limits.cell_bytes)


def _past_csv_bound(
    held: list[bytes] | None,
    header: list[str] | None,
    id_columns: list[str],
    limits: UploadLimits,
    index: int,
    line: int,
) -> InvalidInput:
    """The refusal of a record with a field past csv's bound, of the cell's limit: an id cell's
    is the smaller of the id limit and that bound (the other limits are below the bound)."""
    bound = csv.field_size_limit()
    at = _long_field(b"".join(held).decode(), bound) if held and header else None
    if header is None or at is None or at >= len(header):  # the header's, or not known
        return cell_too_long(f"line {line}", limits.cell_bytes)
    name = header[at]
    if name in id_columns:
        return id_too_long(
            f"{where(index, line)}, id column '{name[:64]}'", min(limits.id_bytes, bound)
        )
    return cell_too_long(f"{where(index, line)}, column '{name[:64]}'", limits.cell_bytes)


def _long_field(record: str, limit: int) -> int:
    """The index of the field of the CSV `record` that csv found longer than `limit` characters:
    the first that is, else the last begun (csv stopped reading `record` within it)."""
    record = record.rstrip("\r\n")
    at = index = 0
    while True:
        if record.startswith('"', at):
            match = QUOTED.match(record, at)
            if match is None:  # no closing quote: the record stops within this field
                return index
            size = match.end() - at - 2 - record.count('""', at + 1, match.end() - 1)
        else:
            match = UNQUOTED.match(record, at)
            assert match is not None  # it matches an empty field too
            size = match.end() - at
        at = match.end()
        if size > limit or not record.startswith(",", at):
            return index
        at += 1
        index += 1


def _invalid_row(signature: Signature, cells: Sequence[str], index: int, line: int) -> InvalidInput:
    """The slow path: the first cell (in signature order) that does not parse, and why."""
    found = cells_problem(signature, cells)
    if found is None:  # pragma: no cover - the parser refused a row whose every cell fits
        return InvalidInput(f"{where(index, line)}: invalid value")
    name, problem = found
    return InvalidInput(f"{where(index, line)}, column '{name[:64]}': {problem}")
