"""The outline of a JSON job upload: one pass of a streaming parser over it, before any row.

A JSON upload is one document, `{"instances": [...], "ids": [...]}` or `{"records": [...]}`,
with its keys in any order, so its rows are read in a second pass (`json_rows`) once this one
has found what it holds: the top-level keys, whether each field is a list, how many entries
each list has. This pass also finds every syntax error, as a parse of the whole document did
before (a NaN, a number out of range, anything that is not JSON), and it bounds what the second
pass builds: a row (an instance, a record or an `ids` entry) spanning more than the row limit,
or any single value (a string, a number) longer than it, is refused (413) before it is built.

ijson with its C backend (yajl2_c) parses; it is fed the spooled upload a block at a time, so
it holds at most one block and one value, and its events are dropped block by block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import itemgetter
from typing import IO, Any

import ijson
from ijson.backends import yajl2_c  # the C backend by name: never the slow Python one

from gateway.http.errors import BodyTooLarge
from gateway.http.payload import NAN_LITERAL
from gateway.jobdata.chunks import no_rows, too_many
from gateway.jobdata.surrogates import SurrogateCheck
from kernel.errors import InvalidInput

#: Bytes fed to the parser at a time; a row is bounded to within two of these.
OUTLINE_BLOCK_BYTES = 16 * 1024
#: The fields whose lists are counted: rows (`instances` or `records`) and `ids`.
LISTS = ("instances", "records", "ids")
#: How deep arrays and objects may be nested, the document itself at depth 1: a row, an
#: instance or a record, is at depth 3 (the document, its list of rows, the row), a list of ids
#: too. A document nested deeper is refused (422) in the block where it passes this, before
#: anything after it is read: the parser's cost is linear in the depth, the second pass's is not.
MAX_DEPTH = 8
#: The depth of the entries of the document's lists.
ENTRY_DEPTH = 2
#: How each of the parser's events changes the depth (any other leaves it).
DEPTH_CHANGE = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}
ENDS = frozenset(["end_map", "end_array"])
TOO_DEEP = (
    f"the body nests arrays and objects deeper than {MAX_DEPTH} levels, the most a JSON upload "
    "may have (a row is at level 3: the document, its list of rows, the row)"
)
#: The most top-level keys kept: a job's document has two at most, and each key kept costs
#: memory (a document of nothing but keys would otherwise cost several times its size).
MAX_KEYS = 16
TOO_MANY_KEYS = (
    f"the body has more than {MAX_KEYS} fields; a job takes 'instances' (and 'ids') or 'records'"
)
NOT_JSON = "the body is not valid JSON"
OUT_OF_RANGE = "a number is out of range"
#: yajl reads integers as 64-bit ones and refuses any other (orjson used to make them floats).
INTEGER_OUT_OF_RANGE = (
    "a number is out of range: an integer must be within ±9223372036854775807 (write a "
    "larger one with a fraction or an exponent, such as 1.5e19)"
)


@dataclass
class Outline:
    """What a JSON upload holds at its top level, found before any row is read."""

    keys: list[str] = field(default_factory=list)
    """The top-level keys in upload order (a key given twice is there twice)."""
    lists: set[str] = field(default_factory=set)
    """The fields of `LISTS` whose value is a list."""
    entries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LISTS, 0))
    """Per field of `LISTS`, the entries of its list."""


def read_outline(body: IO[bytes], max_bytes: int, max_rows: int) -> Outline:
    """The outline of the JSON document in `body` (read from where it is, then put back).

    Raises InvalidInput for a document that is not JSON or not an object, BodyTooLarge for a
    row or value past `max_bytes`, TooManyJobRows once a list of rows passes `max_rows`.
    """
    start = body.tell()
    events = ijson.sendable_list()
    parser = yajl2_c.basic_parse_coro(events, use_float=True)
    reader = _OutlineReader(max_bytes, max_rows)
    surrogates = SurrogateCheck()
    blocks = 0
    try:
        while block := body.read(OUTLINE_BLOCK_BYTES):
            blocks += 1
            parser.send(block)
            reader.take(events, len(block))
            events.clear()
            surrogates.feed(block)
        parser.close()
        reader.take(events, 0)
        surrogates.feed(b"", last=True)
        if surrogates.found:  # orjson refused these, and yajl would change the text
            raise InvalidInput(NOT_JSON)
    except ijson.JSONError as exc:
        if not reader.seen and str(exc).startswith("parse error: premature EOF"):
            raise no_rows() from None  # nothing but whitespace, or nothing at all
        problem = _syntax_problem(str(exc))
        if problem is None:
            problem = NOT_JSON
            if str(exc).startswith("lexical error"):
                problem = _lexical_problem(body, start, blocks)
        raise InvalidInput(problem) from None
    except UnicodeDecodeError:  # yajl passes some bad escapes (a lone low surrogate) to Python
        raise InvalidInput(NOT_JSON) from None
    finally:
        body.seek(start)
    return reader.outline


class _OutlineReader:
    """Takes the parser's events a block at a time and keeps the outline and the bounds.

    The events carry no path (a path per event costs time and memory quadratic in the depth):
    the reader keeps the depth itself, the number of arrays and objects open before each event.
    The document's own keys are at depth 1 and the entries of its lists at depth 2.
    """

    def __init__(self, max_bytes: int, max_rows: int) -> None:
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.outline = Outline()
        self.seen = False
        self.depth = 0  # at the end of the blocks taken so far
        self.key: str | None = None  # the top-level key whose value comes next
        self.field: str | None = None  # the field of `LISTS` whose list is being read
        self.gap = 0  # bytes fed since the last event: a value being read
        self.block = 0
        self.open_since: int | None = None  # the block where the open entry of `field` began

    def take(self, events: list[tuple[str, Any]], size: int) -> None:
        self.block += 1
        if not events:
            self.gap += size
            if self.gap > self.max_bytes:
                raise BodyTooLarge(
                    f"the body has a value longer than {self.max_bytes} bytes, the most one "
                    "row of a JSON upload may be (MODELGATE_MAX_JOB_LINE_BYTES)"
                )
            self._bound_entry()
            return
        self.gap = 0
        if not self.seen:
            self.seen = True
            if events[0][0] != "start_map":
                raise _not_an_object()
        # depths[i]: the depth before event i; depths[-1]: after the last. Summed in C.
        changes = map(DEPTH_CHANGE.get, map(itemgetter(0), events), repeat(0))
        depths = list(accumulate(changes, initial=self.depth))
        if max(depths) > MAX_DEPTH:
            raise InvalidInput(TOO_DEEP)
        if min(depths) >= ENTRY_DEPTH:
            # Most blocks: inside one value of the document's, such as its list of rows.
            if self.field is not None:
                started = depths.count(ENTRY_DEPTH) - int(depths[-1] == ENTRY_DEPTH)
                self.outline.entries[self.field] += started
                self._entry_open(started > 0, depths[-1])
        else:
            self._take_in_order(events, depths)
        self.depth = depths[-1]
        entries = self.outline.entries
        if entries["instances"] > self.max_rows or entries["records"] > self.max_rows:
            raise too_many(self.max_rows)
        self._bound_entry()

    def _take_in_order(self, events: list[tuple[str, Any]], depths: list[int]) -> None:
        """A block's events one by one: where the document's own keys and lists begin."""
        entries = self.outline.entries
        started = False
        for (kind, value), depth in zip(events, depths, strict=False):
            if depth == 1:
                if kind == "map_key":
                    if len(self.outline.keys) == MAX_KEYS:
                        raise InvalidInput(TOO_MANY_KEYS)
                    self.outline.keys.append(value)
                    self.key = value
                elif kind != "end_map":  # the value of `key`
                    self.field = None
                    if kind == "start_array" and self.key in LISTS:
                        self.outline.lists.add(self.key)
                        self.field = self.key
            elif depth == ENTRY_DEPTH and self.field is not None and kind not in ENDS:
                entries[self.field] += 1
                started = True
        self._entry_open(started, depths[-1])

    def _entry_open(self, started: bool, depth: int) -> None:
        """Note whether an entry of `field` is open at the end of a block, and since when."""
        if depth <= ENTRY_DEPTH or self.field is None:
            self.open_since = None
        elif started:  # the last entry begun in the block is still open
            self.open_since = self.block

    def _bound_entry(self) -> None:
        """Refuse an entry that has stayed open through more than `max_bytes` of blocks."""
        since = self.open_since
        if since is None or (self.block - since) * OUTLINE_BLOCK_BYTES <= self.max_bytes:
            return
        name = self.field
        row = self.outline.entries[name] - 1 if name else 0
        what = f"row {row}: its 'ids' entry" if name == "ids" else f"row {row}"
        raise BodyTooLarge(
            f"{what} is longer than {self.max_bytes} bytes, the most one row of a JSON "
            "upload may be (MODELGATE_MAX_JOB_LINE_BYTES)"
        )


def _not_an_object() -> InvalidInput:
    return InvalidInput("the body must be an object with either 'instances' or 'records'")


def _syntax_problem(message: str) -> str | None:
    """The problem of a parse error that says what it is, else None."""
    if message.startswith("parse error: numeric (floating point) overflow"):
        return OUT_OF_RANGE
    if message.startswith("parse error: integer overflow"):
        return INTEGER_OUT_OF_RANGE
    return None


def _lexical_problem(body: IO[bytes], start: int, blocks: int) -> str:
    """Whether a lexical error is a NaN or Infinity literal, or anything else that is not JSON.

    yajl says only that a character is invalid; to know which, the document is parsed again up
    to the block that failed, and that block a byte at a time (an error is rare, and bounded).
    """
    body.seek(start)
    parser = yajl2_c.basic_parse_coro(ijson.sendable_list(), use_float=True)
    try:
        for _ in range(blocks - 1):
            parser.send(body.read(OUTLINE_BLOCK_BYTES))
        block = body.read(OUTLINE_BLOCK_BYTES)
    except ijson.JSONError:  # pragma: no cover - the same bytes failed later the first time
        return NOT_JSON
    for at in range(len(block)):
        try:
            parser.send(block[at : at + 1])
        except (ijson.JSONError, UnicodeDecodeError):
            # yajl stops at the first letter of NaN, Infinity and inf, at the second of nan
            # (read as the start of null), and after the sign of -Infinity. The word may go on
            # in the next block, or have begun in the one before.
            failed = start + (blocks - 1) * OUTLINE_BLOCK_BYTES + at
            body.seek(max(failed - 1, start))
            head = body.read(4 if failed > start else 3).lower()
            word = head[1:] if failed > start else head
            if word.startswith((b"nan", b"inf")) or head.startswith(b"nan"):
                return NAN_LITERAL
            return NOT_JSON
    return NOT_JSON  # pragma: no cover - yajl fails at the byte it cannot take
