"""An NDJSON upload read as a stream, a line (one JSON record) at a time, into validated chunks.

The upload is read in blocks (`lines.upload_lines`): a line past `UploadLimits.line_bytes` is
refused before it is held whole; text values past their limits are refused by `RowChecker`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import orjson

from gateway.http.payload import NAN_LITERAL, is_nan_literal
from gateway.jobdata.chunks import Chunk, ChunkBuilder, no_rows, too_many
from gateway.jobdata.lines import upload_lines
from gateway.jobdata.records import RowChecker, is_out_of_range
from kernel.errors import InvalidInput


def ndjson_chunks(
    body: IO[bytes], checker: RowChecker, chunk_size: int, max_rows: int
) -> Iterator[Chunk]:
    """Validated chunks of the NDJSON upload in `body`; blank lines are skipped but counted."""
    with_ids = bool(checker.id_columns)
    limits = checker.limits
    # A line no longer than this has no text value past a limit: only longer ones are looked at.
    short = min(limits.cell_bytes, limits.id_bytes)
    chunks = ChunkBuilder(chunk_size, with_ids)
    add = chunks.add
    count = 0
    lines = upload_lines(body, limits.line_bytes, universal=False)
    for line, text in enumerate(lines, start=1):
        if not text or text.isspace():
            continue
        if count == max_rows:
            raise too_many(max_rows)
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if is_out_of_range(exc):
                raise InvalidInput(f"row {count} (line {line}): a number is out of range") from None
            if is_nan_literal(exc):
                raise InvalidInput(f"row {count} (line {line}): {NAN_LITERAL}") from None
            raise InvalidInput(f"row {count} (line {line}): not a JSON object") from None
        if type(record) is not dict:
            raise InvalidInput(f"row {count} (line {line}): not a JSON object")
        values, row_ids = checker.record(record, count, line)
        if len(text) > short:
            checker.check_sizes(values, row_ids, count, line)
        count += 1
        if (chunk := add(values, row_ids)) is not None:
            yield chunk
    if count == 0:
        raise no_rows()
    yield from chunks.rest()
