"""The lines of a CSV or NDJSON upload, read a block at a time with a bound on each line.

A line longer than the limit is refused (413 `body_too_large`, naming the limit) as soon as more
than the limit of it has been read, so a reader holds at most the limit and one block of the
upload, whatever the lines: `readline()` without a size is never called.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import IO

from gateway.jobdata.chunks import line_too_long

#: Bytes read from the spooled upload at a time.
BLOCK_BYTES = 64 * 1024


def upload_lines(body: IO[bytes], limit: int, *, universal: bool) -> Iterator[bytes]:
    """The lines of `body`, each at most `limit` bytes besides its line ending.

    Split at `\\n` alone, lines without it (NDJSON; a `\\r` before it is the line's own); or,
    `universal`, at `\\n`, `\\r` and `\\r\\n` with each line's ending kept (CSV, as a text file
    opened with `newline=""` reads them).
    """
    return chain.from_iterable(upload_blocks(body, limit, universal=universal))


def upload_blocks(body: IO[bytes], limit: int, *, universal: bool) -> Iterator[list[bytes]]:
    """The lines of `body` as `upload_lines` gives them, a list per block read (never empty)."""
    # read1 (one read of the underlying stream) where there is one: a stream is not read ahead
    # by a whole block, so a reader that stops early (a row limit) has taken little of it.
    read = getattr(body, "read1", body.read)
    pending = b""
    number = 0  # lines handed out
    while True:
        block = read(BLOCK_BYTES)
        if not block:
            break
        data = pending + block if pending else block
        if universal:
            lines = data.splitlines(keepends=True)
            # The last line goes on in the next block unless it ended with \n (a \r may be the
            # first half of a \r\n).
            pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
        else:
            lines = data.split(b"\n")
            pending = lines.pop()
        if lines and max(map(len, lines)) > limit:  # with their endings: look closer
            for at, line in enumerate(lines):
                if content_bytes(line) > limit:
                    raise line_too_long(number + at + 1, limit)
        if content_bytes(pending) > limit:
            raise line_too_long(number + len(lines) + 1, limit)
        number += len(lines)
        if lines:
            yield lines
    if pending:
        yield [pending]


def content_bytes(line: bytes) -> int:
    """The bytes of `line` without its line ending (`\\r\\n`, `\\n` or `\\r`)."""
    if line.endswith(b"\r\n"):
        return len(line) - 2
    if line.endswith((b"\n", b"\r")):
        return len(line) - 1
    return len(line)
