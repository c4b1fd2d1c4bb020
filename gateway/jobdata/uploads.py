"""Batch-job uploads (CSV, NDJSON or JSON) read into validated chunks of rows.

`iter_chunks` reads an upload that has already been spooled to a binary file and yields `Chunk`s
of at most `chunk_size` rows, positional and in signature order, with the pass-through ids of
each row. Every format is read as a stream, so an upload is never whole in memory: CSV and
NDJSON a block and a line at a time, JSON by an incremental parser (ijson), twice (its outline,
then its rows). What one part may be is `UploadLimits`: a line (CSV, NDJSON) or a row (JSON)
past `line_bytes` is refused with 413 before it is held whole, an id past `id_bytes` or a cell
or text value past `cell_bytes` with 422; each message names its limit. The readers are
`csv_rows`, `ndjson_rows` and `json_rows` (with `json_outline`).

Every problem is an `InvalidInput` whose message names the row (numbered from 0 over data rows)
and, for CSV and NDJSON, the line of the upload, and the column; it never echoes a value the
client sent (column names may be echoed, cut short, as the sync API does).

The values are checked by the sync API's rules, which live in `registry.signature`: numbers must
be finite and within `MAX_MAGNITUDE`, integers integral, booleans true or false. In CSV every cell
is text, read by `registry.cells`: a number is spelt as JSON spells one (RFC 8259, nothing around
it; integral columns come out as `int`), booleans are true/false/1/0 in any case, and id columns
are kept as strings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import IO

from gateway.http.errors import UnsupportedMediaType
from gateway.http.media import CSV, NDJSON, upload_format
from gateway.jobdata.chunks import Chunk, TooManyJobRows, UploadLimits, quoted
from gateway.jobdata.csv_rows import csv_chunks
from gateway.jobdata.json_rows import json_chunks
from gateway.jobdata.ndjson_rows import ndjson_chunks
from gateway.jobdata.records import RowChecker
from kernel.errors import InvalidInput
from registry.signature import Signature

__all__ = ["Chunk", "TooManyJobRows", "UploadLimits", "iter_chunks"]


def iter_chunks(
    body: IO[bytes],
    media_type: str,
    signature: Signature,
    id_columns: list[str],
    chunk_size: int,
    max_rows: int,
    limits: UploadLimits | None = None,
) -> Iterator[Chunk]:
    """Validated chunks of the upload in `body` (a binary file positioned at its start, and
    seekable for JSON, which is read twice).

    Problems of the call itself (an unknown media type, an id column named twice or naming a
    feature) raise at once; problems of the upload raise InvalidInput (TooManyJobRows past
    `max_rows`) or BodyTooLarge (a line or row past `limits.line_bytes`; `limits` defaults to
    `UploadLimits()`) while iterating, at the first one, after the chunks before it were
    yielded. `body` is read, never closed.
    """
    if chunk_size < 1 or max_rows < 1:
        raise ValueError("chunk_size and max_rows must be positive")
    fmt = upload_format(media_type)
    if fmt is None:
        raise UnsupportedMediaType("send text/csv, application/x-ndjson or application/json")
    _check_id_columns(signature, id_columns)
    limits = limits or UploadLimits()
    if fmt == CSV:
        return csv_chunks(body, signature, id_columns, chunk_size, max_rows, limits)
    checker = RowChecker(signature, id_columns, limits)
    if fmt == NDJSON:
        return ndjson_chunks(body, checker, chunk_size, max_rows)
    return json_chunks(body, checker, chunk_size, max_rows)


def _check_id_columns(signature: Signature, id_columns: list[str]) -> None:
    twice = [name for name, count in Counter(id_columns).items() if count > 1]
    if twice:
        raise InvalidInput(f"id column(s) {quoted(twice)} named more than once")
    features = [name for name in id_columns if name in set(signature.names)]
    if features:
        raise InvalidInput(f"id column(s) {quoted(features)} are features of the model")
