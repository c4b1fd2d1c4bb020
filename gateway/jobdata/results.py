"""Job results rendered as JSON, NDJSON or CSV, one piece per stored chunk (never all at once).

CSV is for spreadsheets, which run a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return as a formula (OWASP, "CSV Injection"): with `neutralise` (the gateway's
`csv_neutralise_formulas`), such a text cell (an id, a header name, a text label) gets a leading
`'`, which spreadsheets read as "this is text". A number is left alone: an int or float value,
and a text cell that is a number (`SIGNED_NUMBER`: a JSON number, with `+` allowed as a sign
too, so `-5` and `+1` stay as they are).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from jobs.record import JobRecord
from registry.cells import UNSIGNED_NUMBER

Chunks = Iterable[tuple[list[Any] | None, dict[str, Any]]]
#: The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: A text cell that is a number, left alone: an optional `+` or `-`, then a JSON number.
SIGNED_NUMBER = re.compile("[+-]?+" + UNSIGNED_NUMBER)


def neutralised(cell: Any) -> Any:
    """The cell as it goes in a CSV result: text a spreadsheet would run as a formula gets a
    leading `'`; numbers, and text that is a number, are left alone."""
    if (
        isinstance(cell, str)
        and cell.startswith(FORMULA_STARTS)
        and SIGNED_NUMBER.fullmatch(cell) is None
    ):
        return "'" + cell
    return cell


def id_names(record: JobRecord, ids: list[Any] | None) -> list[str]:
    """Names of the pass-through ids: the id columns, or `id` for an `ids` array."""
    if ids is None:
        return []
    if record.id_columns:
        return record.id_columns
    width = len(ids[0]) if ids else 1
    return ["id"] if width == 1 else [f"id_{k}" for k in range(width)]


def rows_of(record: JobRecord, chunks: Chunks) -> Iterator[list[dict[str, Any]]]:
    """One list of result rows per chunk, each row with its ids, prediction, probabilities."""
    for ids, out in chunks:
        names = id_names(record, ids)
        probabilities = out.get("probabilities")
        rows = []
        for i, prediction in enumerate(out["predictions"]):
            row: dict[str, Any] = dict(zip(names, ids[i], strict=True)) if ids else {}
            row["prediction"] = prediction
            if probabilities is not None:
                row["probabilities"] = probabilities[i]
            rows.append(row)
        yield rows


def ndjson_lines(record: JobRecord, chunks: Chunks) -> Iterator[bytes]:
    for rows in rows_of(record, chunks):
        yield b"".join(orjson.dumps(row) + b"\n" for row in rows)


def json_pieces(record: JobRecord, chunks: Chunks) -> Iterator[bytes]:
    head = {"job_id": record.id, "model": record.model, "version": record.version}
    head["classes"] = record.classes
    yield orjson.dumps(head)[:-1] + b',"results":['
    first = True
    for rows in rows_of(record, chunks):
        if rows:
            body = b",".join(orjson.dumps(row) for row in rows)
            yield body if first else b"," + body
            first = False
    yield b"]}"


def csv_lines(record: JobRecord, chunks: Chunks, *, neutralise: bool = True) -> Iterator[bytes]:
    """The results as CSV: a header, then per row its ids, its prediction and its probabilities
    (numbers); with `neutralise`, the text cells of the header, ids and predictions that a
    spreadsheet would run as formulas are `neutralised`."""
    header_written = False
    classes = record.classes or []
    for rows in rows_of(record, chunks):
        lines: list[list[Any]] = []
        if not header_written:
            names = [
                k for k in (rows[0] if rows else {}) if k not in ("prediction", "probabilities")
            ]
            has_proba = bool(rows) and "probabilities" in rows[0]
            header = [*names, "prediction", *([f"proba_{c}" for c in classes] if has_proba else [])]
            lines.append(list(map(neutralised, header)) if neutralise else header)
            header_written = True
        for row in rows:
            cells = [row[n] for n in names]
            cells.append(row["prediction"])
            if neutralise:
                cells = list(map(neutralised, cells))
            cells.extend(row.get("probabilities", ()))
            lines.append(cells)
        yield csv_text(lines).encode()


def csv_text(lines: list[list[Any]]) -> str:
    """CSV lines, each ending in a newline, every cell quoted as it needs.

    The csv module quotes a cell for the characters of its line terminator only, so with
    newlines a carriage return in a cell would go out bare, and a reader (a spreadsheet too)
    would start a new row there, whose first cell might be a formula. Such lines are written as
    with CRLF line ends, then given a newline again."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    text = buffer.getvalue()
    if "\r" not in text:  # nearly always: one scan of the chunk
        return text
    scratch = io.StringIO()
    writer = csv.writer(scratch, lineterminator="\r\n")
    pieces = []
    for line in lines:
        scratch.seek(0)
        scratch.truncate()
        writer.writerow(line)
        pieces.append(scratch.getvalue()[:-2] + "\n")
    return "".join(pieces)
