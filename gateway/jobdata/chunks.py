"""What every batch-job upload reader shares: the `Chunk` it yields, the `UploadLimits` it
keeps to, and the upload-wide errors.

The readers (`csv_rows`, `ndjson_rows`, `json_rows`) import these; `uploads` chooses the reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gateway.http.errors import BodyTooLarge
from kernel.errors import InvalidInput
from registry.signature import quote_names

#: The JSON values an id may be (ids are passed through to the results, never nested).
JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class UploadLimits:
    """What one part of an upload may be, in bytes (GatewaySettings' `max_job_*_bytes`).

    Every reader holds at most about `line_bytes` of the upload at a time besides its chunk.
    """

    line_bytes: int = 64 * 1024
    """A CSV record (its line, or its lines when a quoted cell spans several) or an NDJSON line,
    its line ending not counted; a JSON row (an instance, a record, an `ids` entry) or value."""
    id_bytes: int = 1024
    """An id value (text, UTF-8), in every format."""
    cell_bytes: int = 4096
    """A CSV cell, and a string value of a feature in JSON and NDJSON (UTF-8)."""


def longer_than(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes in UTF-8 (encoded only when in doubt)."""
    size = len(text)
    return size > limit or (size * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit)


def line_too_long(line: int, limit: int) -> BodyTooLarge:
    """The 413 of a line (or a CSV record) past the line limit, named by where it starts."""
    return BodyTooLarge(
        f"line {line} is longer than {limit} bytes, the most one line of an upload may be "
        "(MODELGATE_MAX_JOB_LINE_BYTES)"
    )


def id_too_long(prefix: str, limit: int) -> InvalidInput:
    """The 422 of an id value past the id limit; `prefix` names the row (and column)."""
    return InvalidInput(
        f"{prefix}: longer than {limit} bytes, the most an id may be (MODELGATE_MAX_JOB_ID_BYTES)"
    )


def cell_too_long(prefix: str, limit: int) -> InvalidInput:
    """The 422 of a cell or string value past the cell limit; `prefix` names row and column."""
    return InvalidInput(
        f"{prefix}: longer than {limit} bytes, the most a value may be "
        "(MODELGATE_MAX_JOB_CELL_BYTES)"
    )


class TooManyJobRows(InvalidInput):
    """An upload with more rows than a job may carry."""

    code = "too_many_rows"


@dataclass(frozen=True)
class Chunk:
    """Up to `chunk_size` validated rows, in upload order."""

    rows: list[list[Any]]
    """Positional rows in signature order."""
    ids: list[list[Any]] | None
    """Per row, the values of its id columns (in id_columns order); None without ids."""


class ChunkBuilder:
    """Gathers a reader's validated rows (and their ids) into chunks of `size` rows."""

    __slots__ = ("size", "with_ids", "rows", "ids")

    def __init__(self, size: int, with_ids: bool) -> None:
        self.size = size
        self.with_ids = with_ids
        self.rows: list[list[Any]] = []
        self.ids: list[list[Any]] | None = [] if with_ids else None

    def add(self, values: list[Any], ids: list[Any] | None) -> Chunk | None:
        """Add a row and its ids (None without ids): the chunk once it is full, else None."""
        rows = self.rows
        rows.append(values)
        if self.ids is not None and ids is not None:
            self.ids.append(ids)
        if len(rows) < self.size:
            return None
        chunk = Chunk(rows, self.ids)
        self.rows = []
        self.ids = [] if self.with_ids else None
        return chunk

    def rest(self) -> Iterator[Chunk]:
        """The last chunk, of the rows added since the last full one, if there are any."""
        if self.rows:
            yield Chunk(self.rows, self.ids)
            self.rows = []
            self.ids = [] if self.with_ids else None


def unknown_columns(prefix: str, unknown: Sequence[str]) -> InvalidInput:
    """Columns neither features nor id columns: name them, and say how ids are passed through."""
    return InvalidInput(
        f"{prefix}: unknown column(s) {quoted(unknown)}; a column to carry through to the "
        "results is an id column: name it in the id_columns query parameter "
        f"(?id_columns={quote(','.join(str(u)[:64] for u in unknown[:3]), safe=',')}; "
        "modelgate jobs submit --id-columns)"
    )


def quoted(names: Sequence[str]) -> str:
    """The first few names for an error message, each cut short: names are bounded when echoed."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return quote_names(names[:3]) + more


def too_many(max_rows: int) -> TooManyJobRows:
    """The error of an upload past `max_rows`."""
    return TooManyJobRows(f"the upload has more than {max_rows} rows, the most a job may carry")


def no_rows() -> InvalidInput:
    """The error of an upload without a single row."""
    return InvalidInput("the upload has no rows")


def where(index: int, line: int | None) -> str:
    """How an error message names a row: by its index and, in a line-based upload, its line."""
    return f"row {index}" if line is None else f"row {index} (line {line})"
