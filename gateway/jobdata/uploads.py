"""Batch-job uploads (CSV, NDJSON or JSON) read into validated chunks of rows.

`iter_chunks` reads an upload that has already been spooled to a binary file and yields `Chunk`s
of at most `chunk_size` rows, positional and in signature order, with the pass-through ids of
each row. CSV and NDJSON are read as a stream, a line at a time, so an upload is never whole in
memory; a JSON body is one document and is parsed whole (bounded by the job byte limit).

Every problem is an `InvalidInput` whose message names the row (numbered from 0 over data rows)
and, for CSV and NDJSON, the line of the upload, and the column; it never echoes a value the
client sent (column names may be echoed, cut short, as the sync API does).

The checks are those of the sync API (`registry.signature`): numbers must be finite and within
`MAX_MAGNITUDE`, integers integral, booleans true or false. In CSV every cell is text, so numbers
are parsed with `float()` (integral columns come out as `int`), booleans are true/false/1/0 in any
case, and id columns are kept as strings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import IO, Any

import orjson

from gateway.http.errors import UnsupportedMediaType
from gateway.http.media import CSV, NDJSON, upload_format
from kernel.errors import InvalidInput
from registry.signature import INTEGER_TYPES, MAX_MAGNITUDE, NUMERIC_TYPES, Signature

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_JSON_SCALARS = (str, int, float, bool, type(None))


class TooManyJobRows(InvalidInput):
    code = "too_many_rows"


@dataclass(frozen=True)
class Chunk:
    """Up to `chunk_size` validated rows, in upload order."""

    rows: list[list[Any]]
    """Positional rows in signature order."""
    ids: list[list[Any]] | None
    """Per row, the values of its id columns (in id_columns order); None without ids."""


def iter_chunks(
    body: IO[bytes],
    media_type: str,
    signature: Signature,
    id_columns: list[str],
    chunk_size: int,
    max_rows: int,
) -> Iterator[Chunk]:
    """Validated chunks of the upload in `body` (a binary file positioned at its start).

    Problems of the call itself (an unknown media type, an id column named twice or naming a
    feature) raise at once; problems of the upload raise InvalidInput (TooManyJobRows past
    `max_rows`) while iterating, at the first one, after the chunks before it were yielded.
    `body` is read, never closed.
    """
    if chunk_size < 1 or max_rows < 1:
        raise ValueError("chunk_size and max_rows must be positive")
    fmt = upload_format(media_type)
    if fmt is None:
        raise UnsupportedMediaType("send text/csv, application/x-ndjson or application/json")
    _check_id_columns(signature, id_columns)
    if fmt == CSV:
        return _csv_chunks(body, signature, id_columns, chunk_size, max_rows)
    reader = _Records(signature, id_columns)
    if fmt == NDJSON:
        return _ndjson_chunks(body, reader, chunk_size, max_rows)
    return _json_chunks(body, reader, chunk_size, max_rows)


# --- shared ------------------------------------------------------------------------------------


def _quoted(names: Sequence[str]) -> str:
    """The first few names, each cut short: names are bounded when echoed back."""
    shown = ", ".join(f"'{n[:64]}'" for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_id_columns(signature: Signature, id_columns: list[str]) -> None:
    twice = [name for name, count in Counter(id_columns).items() if count > 1]
    if twice:
        raise InvalidInput(f"id column(s) {_quoted(twice)} named more than once")
    features = [name for name in id_columns if name in set(signature.names)]
    if features:
        raise InvalidInput(f"id column(s) {_quoted(features)} are features of the model")


def _too_many(max_rows: int) -> TooManyJobRows:
    return TooManyJobRows(f"the upload has more than {max_rows} rows, the most a job may carry")


def _no_rows() -> InvalidInput:
    return InvalidInput("the upload has no rows")


# --- CSV ---------------------------------------------------------------------------------------


def _csv_chunks(
    body: IO[bytes], signature: Signature, id_columns: list[str], chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    # utf-8-sig is UTF-8 that also drops the byte-order mark spreadsheets put before the header.
    text = io.TextIOWrapper(body, encoding="utf-8-sig", newline="")
    try:
        yield from _read_csv(text, signature, id_columns, chunk_size, max_rows)
    finally:
        # Detach so that the wrapper, when collected, does not close the caller's file.
        with contextlib.suppress(ValueError):  # already detached or closed
            text.detach()


def _csv_cell_problem(kind: str, cell: str) -> str | None:
    """Why a CSV cell does not fit a column of type `kind`, or None when it does."""
    if kind in NUMERIC_TYPES:
        if not cell.strip():
            return "expected a number, got an empty cell"
        try:
            value = float(cell)
        except ValueError:
            return "expected a number"
        if math.isnan(value):
            return "must be a finite number"
        if math.isinf(value):
            # float() reads 1e400 as inf: a finite number, too large.
            return "must be a finite number" if "inf" in cell.lower() else "number out of range"
        if abs(value) > MAX_MAGNITUDE:
            return "number out of range"
        if kind in INTEGER_TYPES and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean":
        if not cell.strip():
            return "expected true or false, got an empty cell"
        if cell.strip().lower() not in _BOOLEANS:
            return "expected true or false"
    return None


def _parse_boolean(cell: str) -> bool:
    return _BOOLEANS[cell.strip().lower()]


def _keep(cell: str) -> str:
    return cell


def _getter(positions: list[int]) -> Callable[[list[str]], Sequence[str]]:
    """row -> the cells at `positions`, as a sequence (itemgetter of one index gives a scalar)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


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

    def bad_csv() -> InvalidInput:
        return InvalidInput(f"line {last_line + 1}: not valid CSV")

    def not_utf8() -> InvalidInput:
        return InvalidInput(f"the upload is not valid UTF-8 (near line {max(reader.line_num, 1)})")

    try:
        header: list[str] | None = next(reader, None)
        while header == []:  # blank lines before the header
            last_line = reader.line_num
            header = next(reader, None)
    except csv.Error:
        raise bad_csv() from None
    except UnicodeDecodeError:
        raise not_utf8() from None
    if header is None:
        raise _no_rows()
    header_line = last_line + 1

    features = signature.features
    names = [f.name for f in features]
    duplicates = [name for name, count in Counter(header).items() if count > 1]
    if duplicates:
        raise InvalidInput(
            f"line {header_line} (header): duplicate column(s) {_quoted(duplicates)}"
        )
    position = {name: i for i, name in enumerate(header)}
    missing = [name for name in names if name not in position]
    if missing:
        raise InvalidInput(f"line {header_line} (header): missing column(s) {_quoted(missing)}")
    missing_ids = [name for name in id_columns if name not in position]
    if missing_ids:
        raise InvalidInput(
            f"line {header_line} (header): missing id column(s) {_quoted(missing_ids)}"
        )
    known = set(names) | set(id_columns)
    unknown = [name for name in header if name not in known]
    if unknown:
        raise InvalidInput(f"line {header_line} (header): unknown column(s) {_quoted(unknown)}")

    # Everything per column is decided once, here; the loop below does only the per-row work.
    width = len(header)
    feature_positions = [position[name] for name in names]
    kinds = [f.type for f in features]
    all_numeric = all(kind in NUMERIC_TYPES for kind in kinds)
    numeric_at = [j for j, kind in enumerate(kinds) if kind in NUMERIC_TYPES]
    integer_at = [j for j, kind in enumerate(kinds) if kind in INTEGER_TYPES]
    converters: list[Callable[[str], Any]] = [
        float if kind in NUMERIC_TYPES else _parse_boolean if kind == "boolean" else _keep
        for kind in kinds
    ]
    cells_of = _getter(feature_positions)
    id_positions = [position[name] for name in id_columns]
    low, high = -MAX_MAGNITUDE, MAX_MAGNITUDE

    def invalid_row(index: int, line: int, row: list[str]) -> InvalidInput:
        """The slow path: find the first cell (in signature order) that does not fit."""
        for name, kind, at in zip(names, kinds, feature_positions, strict=True):
            problem = _csv_cell_problem(kind, row[at])
            if problem is not None:
                return InvalidInput(f"row {index} (line {line}), column '{name[:64]}': {problem}")
        return InvalidInput(f"row {index} (line {line}): invalid value")  # pragma: no cover

    rows: list[list[Any]] = []
    ids: list[list[Any]] | None = [] if id_columns else None
    count = 0
    last_line = reader.line_num
    try:
        for row in reader:
            line = last_line + 1
            last_line = reader.line_num
            if not row:  # a blank line
                continue
            if count == max_rows:
                raise _too_many(max_rows)
            if len(row) != width:
                raise InvalidInput(
                    f"row {count} (line {line}): expected {width} fields, got {len(row)}"
                )
            try:
                if all_numeric:
                    values = list(map(float, cells_of(row)))
                else:
                    values = [
                        convert(cell)
                        for convert, cell in zip(converters, cells_of(row), strict=True)
                    ]
            except (ValueError, KeyError):
                raise invalid_row(count, line, row) from None
            if numeric_at:
                numbers = values if all_numeric else [values[j] for j in numeric_at]
                # One C call each instead of a loop: NaN makes the sum NaN; +-inf and anything
                # past the range show in max or min (the sum of floats within 3e38 stays finite).
                total = sum(numbers)
                if total != total or max(numbers) > high or min(numbers) < low:
                    raise invalid_row(count, line, row)
                for j in integer_at:
                    value = values[j]
                    if not value.is_integer():
                        raise invalid_row(count, line, row)
                    values[j] = int(value)
            rows.append(values)
            if ids is not None:
                ids.append([row[at] for at in id_positions])
            count += 1
            if len(rows) == chunk_size:
                yield Chunk(rows, ids)
                rows = []
                ids = [] if id_columns else None
    except csv.Error:
        raise bad_csv() from None
    except UnicodeDecodeError:
        raise not_utf8() from None
    if count == 0:
        raise _no_rows()
    if rows:
        yield Chunk(rows, ids)


# --- NDJSON and JSON ---------------------------------------------------------------------------


def _json_value_problem(kind: str, value: Any) -> str | None:
    """Why a JSON value does not fit a column of type `kind`: registry.signature's checks."""
    if kind in NUMERIC_TYPES:
        # bool is an int in Python, but true/false is not a measurement.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "expected a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if abs(value) > MAX_MAGNITUDE:
            return "number out of range"
        if kind in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "expected true or false"
    elif kind == "string" and not isinstance(value, str):
        return "expected a string"
    return None


def _where(index: int, line: int | None) -> str:
    return f"row {index}" if line is None else f"row {index} (line {line})"


class _Records:
    """Checks rows given as JSON values (records or positional rows) against a signature."""

    def __init__(self, signature: Signature, id_columns: list[str]) -> None:
        self.names = [f.name for f in signature.features]
        self.kinds = [f.type for f in signature.features]
        self.id_columns = id_columns
        self.expected_keys = len(self.names) + len(id_columns)
        self.known = set(self.names) | set(id_columns)

    def check_values(self, values: list[Any], index: int, line: int | None) -> None:
        for name, kind, value in zip(self.names, self.kinds, values, strict=True):
            # The common case (a finite, in-range float or int for a numeric column) is decided
            # here without a call; anything else goes through the full check.
            cls = type(value)
            if (
                (cls is float or cls is int)
                and kind in NUMERIC_TYPES
                and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE
                and (cls is int or kind not in INTEGER_TYPES or value.is_integer())
            ):
                continue
            problem = _json_value_problem(kind, value)
            if problem is not None:
                raise InvalidInput(f"{_where(index, line)}, column '{name[:64]}': {problem}")

    def record(
        self, record: Any, index: int, line: int | None
    ) -> tuple[list[Any], list[Any] | None]:
        """A record's positional values and its ids, validated."""
        if type(record) is not dict:
            raise InvalidInput(
                f"{_where(index, line)}: expected an object of feature names to values"
            )
        try:
            values = [record[name] for name in self.names]
        except KeyError:
            missing = [name for name in self.names if name not in record]
            raise InvalidInput(
                f"{_where(index, line)}: missing feature(s) {_quoted(missing)}"
            ) from None
        ids: list[Any] | None = None
        if self.id_columns:
            try:
                ids = [record[name] for name in self.id_columns]
            except KeyError:
                missing = [name for name in self.id_columns if name not in record]
                raise InvalidInput(
                    f"{_where(index, line)}: missing id column(s) {_quoted(missing)}"
                ) from None
            for name, value in zip(self.id_columns, ids, strict=True):
                if not isinstance(value, _JSON_SCALARS):
                    raise InvalidInput(
                        f"{_where(index, line)}, id column '{name[:64]}': "
                        "expected a string, number, boolean or null"
                    )
        if len(record) != self.expected_keys:
            unknown = [str(key) for key in record if key not in self.known]
            raise InvalidInput(f"{_where(index, line)}: unknown column(s) {_quoted(unknown)}")
        self.check_values(values, index, line)
        return values, ids

    def instance(self, row: Any, index: int) -> list[Any]:
        width = len(self.names)
        if type(row) is not list:
            raise InvalidInput(f"row {index}: expected a list of {width} values")
        if len(row) != width:
            raise InvalidInput(f"row {index}: expected {width} values, got {len(row)}")
        self.check_values(row, index, None)
        return row


def _ndjson_chunks(
    body: IO[bytes], reader: _Records, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    with_ids = bool(reader.id_columns)
    rows: list[list[Any]] = []
    ids: list[list[Any]] | None = [] if with_ids else None
    count = 0
    for line, text in enumerate(body, start=1):
        if not text or text.isspace():
            continue
        if count == max_rows:
            raise _too_many(max_rows)
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # orjson refuses NaN and Infinity; it reads 1e400 as infinity and refuses that too.
            if "infinity" in str(exc):
                raise InvalidInput(f"row {count} (line {line}): a number is out of range") from None
            raise InvalidInput(f"row {count} (line {line}): not a JSON object") from None
        if type(record) is not dict:
            raise InvalidInput(f"row {count} (line {line}): not a JSON object")
        values, row_ids = reader.record(record, count, line)
        rows.append(values)
        if ids is not None and row_ids is not None:
            ids.append(row_ids)
        count += 1
        if len(rows) == chunk_size:
            yield Chunk(rows, ids)
            rows = []
            ids = [] if with_ids else None
    if count == 0:
        raise _no_rows()
    if rows:
        yield Chunk(rows, ids)


def _normalise_ids(ids: Any, rows: int) -> list[list[Any]]:
    """`ids` of an instances body: one scalar or list of scalars per row, each made a list."""
    if type(ids) is not list or len(ids) != rows:
        raise InvalidInput("'ids' must be a list with one entry per instance")
    out: list[list[Any]] = []
    width: int | None = None
    for index, entry in enumerate(ids):
        values = entry if type(entry) is list else [entry]
        if not values or not all(isinstance(v, _JSON_SCALARS) for v in values):
            raise InvalidInput(
                f"row {index}: an id must be a string, number, boolean or null, or a list of them"
            )
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise InvalidInput(f"row {index}: expected {width} id value(s), got {len(values)}")
        out.append(values)
    return out


def _json_chunks(
    body: IO[bytes], reader: _Records, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    data = body.read()  # one JSON document: parsed whole, bounded by the job byte limit
    if not data.strip():
        raise _no_rows()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            raise InvalidInput("a number is out of range") from None
        raise InvalidInput("the body is not valid JSON") from None
    del data
    if type(document) is not dict or ("instances" in document) == ("records" in document):
        raise InvalidInput("the body must be an object with either 'instances' or 'records'")
    unknown = [str(key) for key in document if key not in ("instances", "records", "ids")]
    if unknown:
        raise InvalidInput(f"unknown field(s) {_quoted(unknown)}")

    if "records" in document:
        if "ids" in document:
            raise InvalidInput("'ids' goes with 'instances'; records carry their id columns")
        records = _rows_list(document["records"], "records", max_rows)
        with_ids = bool(reader.id_columns)
        for start in range(0, len(records), chunk_size):
            rows: list[list[Any]] = []
            ids: list[list[Any]] | None = [] if with_ids else None
            for index in range(start, min(start + chunk_size, len(records))):
                values, row_ids = reader.record(records[index], index, None)
                rows.append(values)
                if ids is not None and row_ids is not None:
                    ids.append(row_ids)
            yield Chunk(rows, ids)
        return

    if reader.id_columns:
        raise InvalidInput(
            "id_columns go with records, CSV and NDJSON; send 'ids' with 'instances'"
        )
    instances = _rows_list(document["instances"], "instances", max_rows)
    all_ids = _normalise_ids(document["ids"], len(instances)) if "ids" in document else None
    for start in range(0, len(instances), chunk_size):
        end = min(start + chunk_size, len(instances))
        rows = [reader.instance(instances[index], index) for index in range(start, end)]
        yield Chunk(rows, None if all_ids is None else all_ids[start:end])


def _rows_list(rows: Any, field: str, max_rows: int) -> list[Any]:
    if type(rows) is not list:
        raise InvalidInput(f"'{field}' must be a list of rows")
    if not rows:
        raise _no_rows()
    if len(rows) > max_rows:
        raise _too_many(max_rows)
    return rows
