"""What one part of a job upload may be (gateway/jobdata: UploadLimits), and that every reader
holds no more than about a line of the upload, whatever the upload."""

from __future__ import annotations

import csv
import importlib.machinery
import io
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from typing import IO, Any

import ijson
import orjson
import pytest

from gateway.http.errors import STATUS_BY_CODE, BodyTooLarge
from gateway.jobdata import json_outline, json_rows, lines
from gateway.jobdata.lines import upload_lines
from gateway.jobdata.surrogates import SurrogateCheck
from gateway.jobdata.uploads import Chunk, UploadLimits, iter_chunks
from gateway.settings import GatewaySettings
from kernel.errors import InvalidInput, ModelgateError
from registry.signature import Feature, Signature

IRIS = Signature(tuple(Feature(name, "double") for name in ("a", "b", "c", "d")))
LABELLED = Signature((Feature("x", "double"), Feature("label", "string")))
CSV, NDJSON, JSON = "text/csv", "application/x-ndjson", "application/json"
#: Small limits, so that the tests' uploads stay small.
LIMITS = UploadLimits(line_bytes=1024, id_bytes=32, cell_bytes=64)
SECRET = "S3CRET"


def read(
    data: bytes,
    media: str,
    signature: Signature = IRIS,
    id_columns: list[str] | None = None,
    limits: UploadLimits = LIMITS,
    chunk_size: int = 100,
) -> list[Chunk]:
    with tempfile.SpooledTemporaryFile(max_size=4096) as body:
        body.write(data)
        body.seek(0)
        return list(
            iter_chunks(body, media, signature, id_columns or [], chunk_size, 10**7, limits)
        )


def refusal(data: bytes, media: str, **kwargs: Any) -> ModelgateError:
    with pytest.raises(ModelgateError) as caught:
        read(data, media, **kwargs)
    assert SECRET not in caught.value.message  # no value is echoed
    return caught.value


def too_large(data: bytes, media: str, **kwargs: Any) -> str:
    error = refusal(data, media, **kwargs)
    assert isinstance(error, BodyTooLarge) and STATUS_BY_CODE[error.code] == 413
    assert "MODELGATE_MAX_JOB_LINE_BYTES" in error.message
    return error.message


def invalid(data: bytes, media: str, **kwargs: Any) -> str:
    error = refusal(data, media, **kwargs)
    assert isinstance(error, InvalidInput) and STATUS_BY_CODE[error.code] == 422
    return error.message


def test_the_defaults_are_the_settings_defaults() -> None:
    settings = GatewaySettings()
    assert UploadLimits() == UploadLimits(
        line_bytes=settings.max_job_line_bytes,
        id_bytes=settings.max_job_id_bytes,
        cell_bytes=settings.max_job_cell_bytes,
    )
    assert UploadLimits() == UploadLimits(64 * 1024, 1024, 4096)


def test_a_cell_limit_past_what_csv_reads_is_refused() -> None:
    with pytest.raises(ValueError, match="max_job_cell_bytes"):
        GatewaySettings(max_job_cell_bytes=256 * 1024)


def test_json_is_parsed_by_the_c_backend() -> None:
    """Both passes parse with yajl2_c, whose parsers are a compiled extension's objects."""
    from ijson.backends import _yajl2

    assert _yajl2.__file__ is not None
    assert _yajl2.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    backend = sys.modules["ijson.backends.yajl2_c"]
    assert json_outline.yajl2_c is backend and json_rows.yajl2_c is backend
    events = ijson.sendable_list()
    for parser in (
        backend.basic_parse_coro(events, use_float=True),  # the outline's
        backend.items_coro(events, "instances.item", use_float=True),  # the rows'
    ):
        assert type(parser).__module__ == "_yajl2"
    assert ijson.backend == "yajl2_c"  # the backend installed is the C one, not a fallback


# --- lines: CSV and NDJSON -----------------------------------------------------------------


def exactly(head: bytes, tail: bytes, size: int) -> bytes:
    """`head`, spaces or zeros, then `tail`: `size` bytes."""
    filler = b"0" if head.endswith((b",", b".")) else b" "
    line = head + filler * (size - len(head) - len(tail)) + tail
    assert len(line) == size
    return line


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_line_of_exactly_the_limit_is_read(ending: bytes) -> None:
    line = exactly(b'{"a": 1, "b": 2, "c": 3, "d": ', b"4}", 1024)
    assert len(read(line + ending + line + ending, NDJSON)[0].rows) == 2
    cells = exactly(b"1,2,3,0.", b"", 1024)  # 0.000...0
    wide_cells = UploadLimits(line_bytes=1024, id_bytes=32, cell_bytes=1024)
    chunks = read(b"a,b,c,d" + ending + cells + ending, CSV, limits=wide_cells)
    assert chunks[0].rows == [[1.0, 2.0, 3.0, 0.0]]


@pytest.mark.parametrize("media", [CSV, NDJSON])
@pytest.mark.parametrize("last", [True, False])
def test_a_line_past_the_limit_is_refused_with_its_line(media: str, last: bool) -> None:
    good = b"a,b,c,d\n1,2,3,4\n" if media == CSV else b'{"a": 1, "b": 2, "c": 3, "d": 4}\n' * 2
    head = b"1,2,3," if media == CSV else b'{"a": 1, "b": 2, "c": 3, "d": 4, "e": "'
    long = exactly(head, b"" if media == CSV else b'"}', 1025)
    data = good + long + (b"" if last else b"\n" + good)
    message = too_large(data, media)
    assert message == (
        "line 3 is longer than 1024 bytes, the most one line of an upload may be "
        "(MODELGATE_MAX_JOB_LINE_BYTES)"
    )


def test_a_csv_header_past_the_limit_is_refused() -> None:
    header = b",".join(b"column%d" % i for i in range(200))
    assert too_large(header + b"\n1\n", CSV).startswith("line 1 is longer than 1024 bytes")


def test_a_csv_record_whose_quoted_cell_spans_lines_is_bounded_as_a_line() -> None:
    header = b"id,a,b,c,d\n"
    cell = b'"' + b"x\n" * 200 + b'"'  # 401 bytes over 201 lines
    fits = header + cell + b",1,2,3,4\n"
    assert read(fits, CSV, id_columns=["id"], limits=UploadLimits(1024, 1024, 64))[0].ids
    # The same record over the limit, though each of its lines is short.
    spans = header + b'"' + b"x\n" * 600 + b'",1,2,3,4\n'
    message = too_large(spans, CSV, id_columns=["id"])
    assert message.startswith("lines 2 to ") and "one record" in message


def test_blocks_split_anywhere_give_the_same_lines() -> None:
    """A line ending split between two reads (\\r then \\n) is one ending, not a blank line."""

    class Pieces(io.RawIOBase):
        def __init__(self, pieces: list[bytes]) -> None:
            self.pieces = pieces

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self.pieces:
                return 0
            piece = self.pieces.pop(0)
            buffer[: len(piece)] = piece
            return len(piece)

    data = b"a,b\r\n1,2\r3,4\n\n5,6\r\n"
    whole = list(upload_lines(io.BytesIO(data), 100, universal=True))
    assert whole == [b"a,b\r\n", b"1,2\r", b"3,4\n", b"\n", b"5,6\r\n"]
    for cut in range(1, len(data)):
        body = io.BufferedReader(Pieces([data[:cut], data[cut:]]))
        assert list(upload_lines(body, 100, universal=True)) == whole
    assert list(upload_lines(io.BytesIO(data), 100, universal=False)) == data.split(b"\n")[:-1]


class Watched(io.BytesIO):
    """An upload in memory that remembers how far into it anything was read."""

    furthest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data

    def read1(self, size: int | None = -1, /) -> bytes:
        data = super().read1(size)
        self.furthest = max(self.furthest, self.tell())
        return data


@pytest.mark.parametrize(
    ("media", "head", "filler"),
    [
        (CSV, b"id,a,b,c,d\n", b"x"),
        (NDJSON, b'{"id": "', b"x"),
        (JSON, b'{"instances": [[1, 2, 3, 4]], "ids": ["', b"x"),
        (JSON, b'{"instances": [[1, 2, 3, ', b"4, "),
        (JSON, b'{"records": [{"a": 1, "b": [', b"[1], "),
        (JSON, b'{"instances": [[1, 2, 3, 4]], "ids": [[', b'"a", '),
        (JSON, b'{"extra": "', b"x"),
        (JSON, b'{"instances": [[1, 2, 3, 4]], "extra": ', b"1"),
    ],
)
def test_a_huge_line_or_value_is_refused_having_read_little(
    media: str, head: bytes, filler: bytes
) -> None:
    """A line, row or value of 8 MiB is refused once the limit is read, never held whole."""
    body = Watched(head + filler * (8 * 1024 * 1024 // len(filler)))
    ids = ["id"] if media != JSON else []
    with pytest.raises(BodyTooLarge, match="MODELGATE_MAX_JOB_LINE_BYTES"):
        list(iter_chunks(body, media, IRIS, ids, 100, 1000, UploadLimits()))
    # The limit, and the blocks read ahead of it.
    assert body.furthest <= 64 * 1024 + 3 * lines.BLOCK_BYTES


# --- ids and cells: every format -----------------------------------------------------------


def uploads_with_id(id_value: str) -> dict[str, tuple[bytes, list[str]]]:
    row = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    records = [{"id": "r0", **row}, {"id": id_value, **row}]
    return {
        "csv": (
            b"id,a,b,c,d\nr0,1,2,3,4\n" + f'"{id_value}",1,2,3,4\n'.encode(),
            ["id"],
        ),
        "ndjson": (b"".join(orjson.dumps(r) + b"\n" for r in records), ["id"]),
        "records": (orjson.dumps({"records": records}), ["id"]),
        "instances": (
            orjson.dumps({"ids": ["r0", id_value], "instances": [[1, 2, 3, 4]] * 2}),
            [],
        ),
    }


MEDIA = {"csv": CSV, "ndjson": NDJSON, "records": JSON, "instances": JSON}


@pytest.mark.parametrize("fmt", MEDIA)
def test_an_id_past_the_limit_is_refused_naming_it(fmt: str) -> None:
    data, ids = uploads_with_id(SECRET + "x" * (33 - len(SECRET)))[fmt]
    message = invalid(data, MEDIA[fmt], id_columns=ids)
    where = {
        "csv": "row 1 (line 3), id column 'id'",
        "ndjson": "row 1 (line 2), id column 'id'",
        "records": "row 1, id column 'id'",
        "instances": "row 1, id",
    }[fmt]
    assert message == (
        f"{where}: longer than 32 bytes, the most an id may be (MODELGATE_MAX_JOB_ID_BYTES)"
    )


@pytest.mark.parametrize("fmt", MEDIA)
def test_an_id_of_exactly_the_limit_is_kept(fmt: str) -> None:
    value = "é" * 16  # 32 bytes in UTF-8, 16 characters
    data, ids = uploads_with_id(value)[fmt]
    chunks = read(data, MEDIA[fmt], id_columns=ids)
    assert chunks[0].ids == [["r0"], [value]]


@pytest.mark.parametrize("fmt", MEDIA)
def test_an_id_counts_its_utf8_bytes_not_its_characters(fmt: str) -> None:
    data, ids = uploads_with_id("é" * 17)[fmt]  # 17 characters, 34 bytes
    assert "longer than 32 bytes" in invalid(data, MEDIA[fmt], id_columns=ids)


def labelled(label: str) -> dict[str, bytes]:
    records = [{"x": 1.0, "label": "a"}, {"x": 2.0, "label": label}]
    return {
        "csv": b"x,label\n1,a\n" + f"2,{label}\n".encode(),
        "ndjson": b"".join(orjson.dumps(r) + b"\n" for r in records),
        "records": orjson.dumps({"records": records}),
        "instances": orjson.dumps({"instances": [[1.0, "a"], [2.0, label]]}),
    }


@pytest.mark.parametrize("fmt", MEDIA)
def test_a_text_value_past_the_cell_limit_is_refused_naming_it(fmt: str) -> None:
    message = invalid(labelled(SECRET + "y" * 60)[fmt], MEDIA[fmt], signature=LABELLED)
    where = {"csv": "row 1 (line 3)", "ndjson": "row 1 (line 2)"}.get(fmt, "row 1")
    assert message == (
        f"{where}, column 'label': longer than 64 bytes, the most a value may be "
        "(MODELGATE_MAX_JOB_CELL_BYTES)"
    )


@pytest.mark.parametrize("fmt", MEDIA)
def test_a_text_value_of_exactly_the_cell_limit_is_kept(fmt: str) -> None:
    chunks = read(labelled("z" * 64)[fmt], MEDIA[fmt], signature=LABELLED)
    assert chunks[0].rows[1] == [2.0, "z" * 64]


def test_a_long_csv_number_cell_is_refused_by_the_cell_limit() -> None:
    data = b"a,b,c,d\n1,2,3," + b"1" * 65 + b"\n"
    assert invalid(data, CSV).startswith("row 0 (line 2), column 'd': longer than 64 bytes")


@pytest.mark.parametrize("id_bytes", [512 * 1024, 1024])
def test_a_csv_cell_past_what_csv_reads_is_refused_by_its_own_limit(id_bytes: int) -> None:
    """With the line limit raised past csv's bound on a field (128 KiB), a cell past that bound
    is refused as csv stops reading it: an id cell by the id limit (at most that bound), another
    by the cell limit, each named with its column."""
    bound = csv.field_size_limit()
    limits = UploadLimits(line_bytes=1024 * 1024, id_bytes=id_bytes, cell_bytes=4096)
    id_limit = min(id_bytes, bound)
    cases = {
        b"id,a,b,c,d\nr0,1,2,3,4\n" + b"x" * (bound + 1000) + b",1,2,3,4\n": "id",
        # quoted, over lines, with quotes and commas: csv stops reading within the cell
        b'a,b,id,c,d\n1,2,r0,3,4\n1,2,"' + b'x"",\n' * (bound // 4 + 1) + b'",3,4\n': "id",
        b'a,b,c,d,id\n1,2,3,4,r0\n1,2,3,4,"' + b'x""\n' * (bound // 2) + b'"\r\n': "id",
        b"id,a,b,c,d\nr0,1,2,3,4\nr1,1,2," + b"3" * (bound + 1) + b",4\n": "c",
    }
    for data, column in cases.items():
        message = invalid(data, CSV, id_columns=["id"], limits=limits)
        if column == "id":
            assert message == (
                f"row 1 (line 3), id column 'id': longer than {id_limit} bytes, the most an id "
                "may be (MODELGATE_MAX_JOB_ID_BYTES)"
            )
        else:
            assert message == (
                f"row 1 (line 3), column '{column}': longer than 4096 bytes, the most a value "
                "may be (MODELGATE_MAX_JOB_CELL_BYTES)"
            )
    # An id cell of csv's bound is read, when the id limit takes it.
    data = b"id,a,b,c,d\n" + b"y" * bound + b",1,2,3,4\n"
    if id_bytes >= bound:
        assert read(data, CSV, id_columns=["id"], limits=limits)[0].ids == [["y" * bound]]


# --- JSON: the outline pass ----------------------------------------------------------------


def test_json_keys_come_in_any_order() -> None:
    rows = [[1, 2.5, 3, 4], [5, 6, 7, 8.0]]
    first = read(orjson.dumps({"ids": ["a", "b"], "instances": rows}), JSON, chunk_size=1)
    last = read(orjson.dumps({"instances": rows, "ids": ["a", "b"]}), JSON, chunk_size=1)
    for chunks in (first, last):
        assert [c.rows for c in chunks] == [[rows[0]], [rows[1]]]
        assert [c.ids for c in chunks] == [[["a"]], [["b"]]]


def test_json_numbers_keep_their_types() -> None:
    data = b'{"instances": [[1, 2.0, -0.0, 1e2], [0, -7, 1.5E-3, 123456789012]]}'
    rows = read(data, JSON)[0].rows
    assert rows == [[1, 2.0, -0.0, 100.0], [0, -7, 0.0015, 123456789012]]
    assert [[type(v) for v in row] for row in rows] == [
        [int, float, float, float],
        [int, int, float, int],
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"instances": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}', "given more than once"),
        (b'{"instances": [[1, 2, 3, 9223372036854775808]]}', "a number is out of range"),
        (b'{"instances": [[1, 2, 3, 4]], "ids": [-9223372036854775809]}', "out of range"),
        (b'{"instances": [[1, 2, 3, "a\\udc00"]]}', "the body is not valid JSON"),
        (b'{"instances": [[1, 2, 3, 4]]} x', "the body is not valid JSON"),
        (b'{"instances": [[1, 2, 3, 4]]', "the body is not valid JSON"),
        (b"\xef\xbb\xbf" + b'{"instances": [[1, 2, 3, 4]]}', "the body is not valid JSON"),
        (b'{"instances": {"item": [1, 2, 3, 4]}}', "'instances' must be a list of rows"),
        (b'{"instances": [[1, 2, 3, 4]], "ids": {"item": 1}}', "'ids' must be a list with"),
        (b"   \n ", "the upload has no rows"),
        (b"nan", "NaN and Infinity are not JSON"),
    ],
)
def test_json_document_problems(document: bytes, message: str) -> None:
    assert message in invalid(document, JSON)


@pytest.mark.parametrize("literal", [b"NaN", b"nan", b"Infinity", b"-Infinity", b"inf"])
def test_a_nan_literal_is_named_wherever_the_blocks_split_it(literal: bytes) -> None:
    """yajl names no character; the literal is found again even when it straddles two blocks."""
    block = json_outline.OUTLINE_BLOCK_BYTES
    head = b'{"instances": [' + b"[1, 2, 3, 4], " * 1200
    for shift in range(-len(literal) - 8, 3):
        pad = b" " * (block - len(head) % block + shift)
        document = head + pad + b"[1, 2, 3, " + literal + b"]]}"
        assert (
            invalid(document, JSON)
            == "NaN and Infinity are not JSON: send null for a missing value"
        )
    for word in (b"Nope", b"nul", SECRET.encode()):
        assert invalid(head + b"[1, 2, 3, " + word + b"]]}", JSON) == "the body is not valid JSON"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"instances": [[1, 2, 3, 4], [' + b"0, " * 20_000 + b"0]]}", "row 1 is longer than"),
        (
            b'{"records": [{"a": 1, "b": 2, "c": 3, "d": 4}, {"z": [' + b"0, " * 20_000 + b"0]}]}",
            "row 1 is longer than",
        ),
        (
            b'{"instances": [[1, 2, 3, 4]], "ids": [[' + b'"a", ' * 12_000 + b'"a"]]}',
            "row 0: its 'ids' entry is longer than",
        ),
        (
            b'{"instances": [[1, 2, 3, 4]], "extra": "' + b"x" * 60_000 + b'"}',
            "the body has a value",
        ),
    ],
)
def test_a_json_row_or_value_past_the_limit_is_refused(document: bytes, message: str) -> None:
    limits = UploadLimits(line_bytes=2048)
    assert too_large(document, JSON, limits=limits).startswith(message)


def test_a_json_row_up_to_the_limit_is_always_read() -> None:
    """Rows are measured a block at a time, so a row of the limit is read wherever it lies."""
    block = json_outline.OUTLINE_BLOCK_BYTES
    limits = UploadLimits(line_bytes=block)
    wide = Signature(tuple(Feature(f"f{i}", "long") for i in range(block // 3)))
    row = b"[" + b", ".join([b"1"] * len(wide.names)) + b"]"
    assert len(row) <= block
    for shift in range(0, block, block // 7):
        document = b'{"instances": [' + b" " * shift + row + b"]}"
        assert len(read(document, JSON, signature=wide, limits=limits)[0].rows) == 1


#: How deep a JSON upload may nest (json_outline.MAX_DEPTH, documented in docs/jobs.md).
DEPTH_LIMIT = 8


def test_a_deeply_nested_json_document_is_refused_at_once_in_bounded_memory() -> None:
    """Depth 20,000 in 40 KB (within a row's limit) used to cost about 1 GB and seconds, a path
    built per event: it is refused in the first block, holding about a block's events."""
    depth = 20_000
    body = Watched(b'{"instances": [' + b"[" * depth + b"]" * depth + b"]}")
    started = time.perf_counter()
    caught, peak = _refused_json(body)
    seconds = time.perf_counter() - started
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"
    assert body.furthest <= json_outline.OUTLINE_BLOCK_BYTES  # the first block, no further
    assert seconds < 1.0
    assert caught.value.message == (
        "the body nests arrays and objects deeper than 8 levels, the most a JSON upload may "
        "have (a row is at level 3: the document, its list of rows, the row)"
    )
    assert json_outline.MAX_DEPTH == DEPTH_LIMIT


def nested(levels: int) -> bytes:
    """A value `levels` arrays and objects deep (a scalar when 0)."""
    pairs, odd = divmod(levels, 2)
    return b'{"k": [' * pairs + b"[" * odd + b"1" + b"]" * odd + b"]}" * pairs


@pytest.mark.parametrize(
    ("head", "tail", "depth"),
    [
        (b'{"instances": [[1, 2, 3, 4]], "extra": ', b"}", 1),  # below the document
        (b'{"instances": [[1, 2, 3, 4]], "ids": [', b"]}", 2),  # below an ids list
        (b'{"records": [{"a": 1, "b": 2, "c": 3, "d": ', b"}]}", 3),  # below a record
    ],
)
def test_json_nested_up_to_the_depth_limit_is_parsed_and_no_deeper(
    head: bytes, tail: bytes, depth: int
) -> None:
    """Up to MAX_DEPTH levels a document is outlined, wherever its blocks split it; one level
    more is refused by the outline, before any row is read."""
    block = json_outline.OUTLINE_BLOCK_BYTES
    deepest = DEPTH_LIMIT - depth
    for shift in range(-12, 4, 3):
        pad = b" " * (block - len(head) + shift)
        for levels, refused in ((deepest, False), (deepest + 1, True)):
            document = head + pad + nested(levels) + tail
            with tempfile.SpooledTemporaryFile() as body:
                body.write(document)
                body.seek(0)
                if refused:
                    with pytest.raises(InvalidInput, match="deeper than 8 levels"):
                        json_outline.read_outline(body, 64 * 1024, 10)
                else:
                    json_outline.read_outline(body, 64 * 1024, 10)
    rows = read(b'{"instances": [[1, 2, 3, 4]], "ids": [["a", 1]]}', JSON)
    assert rows[0].rows == [[1, 2, 3, 4]] and rows[0].ids == [["a", 1]]


def test_a_json_document_of_many_fields_is_refused_having_kept_few() -> None:
    """Top-level keys are kept (they are checked once the document is read): a document of
    100,000 of them (1.8 MB) is refused at the 17th, not kept whole (that took 12 MB)."""
    fields = b",".join(b'"field-%06d": 1' % i for i in range(100_000))
    body = Watched(b'{"instances": [[1, 2, 3, 4]], ' + fields + b"}")
    caught, peak = _refused_json(body)
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    assert body.furthest <= json_outline.OUTLINE_BLOCK_BYTES
    assert caught.value.message == (
        "the body has more than 16 fields; a job takes 'instances' (and 'ids') or 'records'"
    )
    sixteen = b",".join(b'"field-%d": 1' % i for i in range(15))
    message = invalid(b'{"instances": [[1, 2, 3, 4]], ' + sixteen + b"}", JSON)
    assert message == "unknown field(s) 'field-0', 'field-1', 'field-2' and 12 more"


# --- memory: what a reader holds -----------------------------------------------------------


#: A long id (about 500 bytes) makes an upload of few rows large, so that it reads fast.
PADDING = b"x" * 480


def big_upload(media: str, rows: int) -> Iterator[bytes]:
    """`rows` valid iris rows with ids of about 500 bytes, in pieces."""
    if media == CSV:
        yield b"id,a,b,c,d\n"
        for i in range(rows):
            yield b"row-%08d-%s,5.1,3.5,1.4,0.2\n" % (i, PADDING)
    elif media == NDJSON:
        for i in range(rows):
            yield b'{"id": "row-%08d-%s", "a": 5.1, "b": 3.5, "c": 1.4, "d": 0.2}\n' % (i, PADDING)
    else:
        yield b'{"instances": ['
        for i in range(rows):
            yield (b", " if i else b"") + b"[5.1, 3.5, 1.4, 0.2]"
        yield b'], "ids": ['
        for i in range(rows):
            yield (b", " if i else b"") + b'"row-%08d-%s"' % (i, PADDING)
        yield b"]}"


@pytest.mark.parametrize("media", [CSV, NDJSON, JSON])
def test_a_reader_holds_a_chunk_not_the_upload(media: str) -> None:
    """Reading 20,000 rows (10 MB) in chunks of 1,000: the Python memory at its peak is a chunk
    and a few blocks (about 1.5 MB), not the upload (a whole-document parse takes 25 MB)."""
    with tempfile.TemporaryFile() as body:
        for piece in big_upload(media, 20_000):
            body.write(piece)
        size = body.tell()
        body.seek(0)
        ids = [] if media == JSON else ["id"]
        tracemalloc.start()
        try:
            rows = 0
            for chunk in iter_chunks(body, media, IRIS, ids, 1000, 10**6, UploadLimits()):
                rows += len(chunk.rows)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert rows == 20_000 and size > 10_000_000
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes reading {size} bytes"


# --- JSON: the same values as orjson -------------------------------------------------------

TEXT = Signature((Feature("s", "string"),))


@pytest.mark.parametrize(
    "escape",
    [
        rb"\ud800",  # a high surrogate alone: yajl reads "?"
        rb"\ud800\u0041",  # and before another escape: yajl makes one character of both
        rb"x\uDBFFx",
        rb"\udc00",  # a low one alone
        rb"\ud83d\ude00",  # a pair: one character
        rb"\uD800\uDC00",
        rb"\\ud800",  # a backslash, then text
        rb"\\\ud800",  # a backslash, then a high surrogate alone
        rb"\u00e9\n\"\/",
    ],
)
def test_json_strings_are_read_as_orjson_reads_them(escape: bytes) -> None:
    """Wherever the blocks split the string, it is refused exactly when orjson refuses it, and
    read as orjson reads it otherwise (the sync API's parser)."""
    block = json_outline.OUTLINE_BLOCK_BYTES
    head = b'{"instances": [' + b'["a"], ' * 2000
    for tail in (b'"]]}', b'"], ' + b'["z"], ' * 3000 + b'["q"]]}'):
        for shift in range(-len(escape) - 14, 3):
            document = head + b'["' + b"y" * (block - len(head) % block + shift) + escape + tail
            try:
                expected = orjson.loads(document)["instances"]
            except orjson.JSONDecodeError:
                assert invalid(document, JSON, signature=TEXT) == "the body is not valid JSON"
            else:
                chunks = read(document, JSON, signature=TEXT, limits=UploadLimits())
                assert [row for chunk in chunks for row in chunk.rows] == expected


@pytest.mark.parametrize(
    "tail",
    [b'"]]}', b'\\udc00"]]}', b'"], ' + b'["z"], ' * 10 + b'["q"]]}'],
    ids=["end", "low", "more"],
)
def test_backslashes_before_a_surrogate_escape_are_read_as_orjson_reads_them(tail: bytes) -> None:
    """`\\` times n then `\\ud800`: a lone high surrogate when n is even, a backslash and text
    when odd; with runs of any length ending at any offset around a block boundary, the upload
    is refused exactly when orjson refuses it, and read as orjson reads it otherwise."""
    block = json_outline.OUTLINE_BLOCK_BYTES
    head = b'{"instances": ['
    for run in range(48):
        for shift in range(-40, 3):
            # The escape's own backslash at `block + shift`.
            pad = b" " * (block + shift - len(head) - len(b'["x') - run)
            document = head + pad + b'["x' + b"\\" * run + b"\\ud800" + tail
            try:
                expected = orjson.loads(document)["instances"]
            except orjson.JSONDecodeError:
                assert invalid(document, JSON, signature=TEXT) == "the body is not valid JSON"
            else:
                chunks = read(document, JSON, signature=TEXT, chunk_size=10_000)
                assert [row for chunk in chunks for row in chunk.rows] == expected


def test_the_surrogate_check_carries_a_run_of_backslashes_over_any_blocks() -> None:
    """Fed in blocks of 1 to 40 bytes, a run of backslashes longer than several blocks still
    decides whether the `\\ud800` after it is an escape (lone, so found) or text."""
    for run in (*range(12), 31, 32, 33, 64, 65, 100, 101):
        for after in (b"", b"\\udc00", b"x"):
            document = b'"a' + b"\\" * run + b"\\ud800" + after + b'"'
            lone = run % 2 == 0 and not after.startswith(b"\\udc")
            for size in range(1, 41):
                check = SurrogateCheck()
                for at in range(0, len(document), size):
                    check.feed(document[at : at + size])
                check.feed(b"", last=True)
                assert check.found == lone, (run, after, size)


@pytest.mark.parametrize(
    "values",
    [
        b"0, -0, 1, -1, 9223372036854775807, -9223372036854775807",
        b"0.0, -0.0, 1.5, -2.25e-3, 1E2, 1e+2, 3.0e38, 1e-400, 0.1, 123456789.123456789",
        b"2.2250738585072014e-308, 1.7976931348623157e308, 5e-324, 4.9406564584124654e-324",
    ],
)
def test_json_numbers_are_read_as_orjson_reads_them(values: bytes) -> None:
    """The parser's numbers (before the signature's range check) are orjson's, types too."""
    document = b'{"instances": [[' + values + b"]]}"
    with tempfile.SpooledTemporaryFile() as body:
        body.write(document)
        body.seek(0)
        assert json_outline.read_outline(body, 64 * 1024, 10).entries["instances"] == 1
        rows = list(json_rows._items(body, 0, "instances.item"))
    expected = orjson.loads(b"[" + values + b"]")
    assert rows == [expected]
    assert [type(v) for v in rows[0]] == [type(v) for v in expected]


def _refused_json(body: IO[bytes]) -> tuple[pytest.ExceptionInfo[InvalidInput], int]:
    """The refusal of a JSON upload and the peak memory traced while it was read."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as caught:
            list(iter_chunks(body, JSON, IRIS, [], 100, 1000, UploadLimits()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught, peak
