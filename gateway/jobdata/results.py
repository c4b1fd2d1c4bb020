"""Job results rendered as JSON, NDJSON or CSV, one piece per stored chunk (never all at once)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from jobs.record import JobRecord

Chunks = Iterable[tuple[list[Any] | None, dict[str, Any]]]


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


def csv_lines(record: JobRecord, chunks: Chunks) -> Iterator[bytes]:
    header_written = False
    classes = record.classes or []
    for rows in rows_of(record, chunks):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not header_written:
            names = [
                k for k in (rows[0] if rows else {}) if k not in ("prediction", "probabilities")
            ]
            has_proba = bool(rows) and "probabilities" in rows[0]
            writer.writerow(
                [*names, "prediction", *([f"proba_{c}" for c in classes] if has_proba else [])]
            )
            header_written = True
        for row in rows:
            values = [row[n] for n in names]
            writer.writerow([*values, row["prediction"], *row.get("probabilities", [])])
        yield buffer.getvalue().encode()
