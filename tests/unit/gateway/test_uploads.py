"""Batch-job uploads read into validated chunks (gateway/jobdata/uploads.py)."""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import tempfile
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.http.errors import UnsupportedMediaType
from gateway.http.media import upload_format
from gateway.http.payload import NAN_LITERAL
from gateway.jobdata import csv_rows, json_rows, ndjson_rows
from gateway.jobdata.chunks import ChunkBuilder
from gateway.jobdata.uploads import Chunk, TooManyJobRows, iter_chunks
from kernel.errors import InvalidInput
from registry.cells import NOT_JSON_NUMBER, cell_problem, cells_parser
from registry.signature import (
    MISSING_REFUSED,
    Feature,
    Signature,
    _check_value,
    value_problem,
)

IRIS = Signature(
    tuple(
        Feature(name, "double")
        for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    )
)
MIXED = Signature(
    (
        Feature("x", "double"),
        Feature("n", "long"),
        Feature("flag", "boolean"),
        Feature("label", "string"),
    )
)
HEADER = "sepal_length,sepal_width,petal_length,petal_width"
#: A value no error message may ever contain.
SECRET = "S3CRET-value"


@contextlib.contextmanager
def body_of(data: str | bytes) -> Iterator[tempfile.SpooledTemporaryFile[bytes]]:
    """The upload spooled as the route spools it (small ones stay in memory)."""
    with tempfile.SpooledTemporaryFile(max_size=1024) as body:
        body.write(data.encode() if isinstance(data, str) else data)
        body.seek(0)
        yield body


def read(
    data: str | bytes,
    media: str = "text/csv",
    signature: Signature = IRIS,
    id_columns: list[str] | None = None,
    chunk_size: int = 1000,
    max_rows: int = 1_000_000,
) -> list[Chunk]:
    with body_of(data) as body:
        return list(iter_chunks(body, media, signature, id_columns or [], chunk_size, max_rows))


def rows_of(chunks: list[Chunk]) -> list[list[Any]]:
    return [row for chunk in chunks for row in chunk.rows]


def ids_of(chunks: list[Chunk]) -> list[list[Any]]:
    return [ids for chunk in chunks for ids in chunk.ids or []]


def error_of(data: str | bytes, media: str = "text/csv", **kwargs: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        read(data, media, **kwargs)
    message = caught.value.message
    assert SECRET.lower() not in message.lower()
    return message


def csv_of(rows: list[list[Any]], header: str = HEADER) -> str:
    return header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def ndjson_of(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def iris_records(n: int, with_id: bool = False) -> list[dict[str, Any]]:
    names = IRIS.names
    return [
        {
            **{name: float(i + k) for k, name in enumerate(names)},
            **({"id": f"r{i}"} if with_id else {}),
        }
        for i in range(n)
    ]


def upload(fmt: str, n: int, with_ids: bool) -> tuple[bytes, str, list[str]]:
    """`n` iris rows (row i is [i, i+1, i+2, i+3], id `r{i}`) in one of the three formats."""
    records = iris_records(n, with_ids)
    if fmt == "csv":
        header = ("id," if with_ids else "") + HEADER
        lines = [
            (f"{r['id']}," if with_ids else "") + ",".join(str(r[x]) for x in IRIS.names)
            for r in records
        ]
        return (
            (header + "\n" + "".join(line + "\n" for line in lines)).encode(),
            "text/csv",
            (["id"] if with_ids else []),
        )
    if fmt == "ndjson":
        return ndjson_of(records), "application/x-ndjson", ["id"] if with_ids else []
    if fmt == "records":
        return orjson.dumps({"records": records}), "application/json", ["id"] if with_ids else []
    document: dict[str, Any] = {"instances": [[r[x] for x in IRIS.names] for r in records]}
    if with_ids:
        document["ids"] = [r["id"] for r in records]
    return orjson.dumps(document), "application/json", []


FORMATS = ["csv", "ndjson", "records", "instances"]


# --- media types and arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("text/csv", "text/csv"),
        ("text/csv; charset=utf-8", "text/csv"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("application/jsonl", "application/x-ndjson"),
        ("Application/JSON", "application/json"),
        ("text/plain", None),
        ("", None),
    ],
)
def test_upload_format(content_type: str, fmt: str | None) -> None:
    assert upload_format(content_type) == fmt


def test_unknown_media_type_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType):
        read("a\n1\n", "text/plain")


def test_jsonl_is_read_as_ndjson() -> None:
    data, _, _ = upload("ndjson", 3, False)
    assert rows_of(read(data, "application/jsonl")) == [[i, i + 1, i + 2, i + 3] for i in range(3)]


def test_id_column_that_is_a_feature_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'petal_width' are features"):
        iter_chunks(io.BytesIO(), "text/csv", IRIS, ["petal_width"], 10, 10)


def test_id_column_named_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        iter_chunks(io.BytesIO(), "text/csv", IRIS, ["id", "id"], 10, 10)


# --- chunking and ids, every format ------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("n", "sizes"), [(3, [3]), (4, [4]), (5, [4, 1]), (8, [4, 4]), (9, [4, 4, 1])]
)
def test_chunk_boundaries(fmt: str, n: int, sizes: list[int]) -> None:
    data, media, id_columns = upload(fmt, n, with_ids=False)
    chunks = read(data, media, id_columns=id_columns, chunk_size=4)
    assert [len(chunk.rows) for chunk in chunks] == sizes
    assert all(chunk.ids is None for chunk in chunks)
    assert rows_of(chunks) == [[float(i + k) for k in range(4)] for i in range(n)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ids_are_carried_in_order(fmt: str) -> None:
    data, media, id_columns = upload(fmt, 9, with_ids=True)
    chunks = read(data, media, id_columns=id_columns, chunk_size=4)
    for chunk in chunks:
        assert chunk.ids is not None
        assert len(chunk.ids) == len(chunk.rows)
    assert ids_of(chunks) == [[f"r{i}"] for i in range(9)]
    assert rows_of(chunks) == [[float(i + k) for k in range(4)] for i in range(9)]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "records"])
def test_several_id_columns_come_in_id_columns_order(fmt: str) -> None:
    records = [{**r, "a": f"a{i}", "b": f"b{i}"} for i, r in enumerate(iris_records(3))]
    if fmt == "csv":
        data = csv_of(
            [[r["b"], *[r[x] for x in IRIS.names], r["a"]] for r in records], "b," + HEADER + ",a"
        )
        media = "text/csv"
    elif fmt == "ndjson":
        data, media = ndjson_of(records).decode(), "application/x-ndjson"
    else:
        data, media = orjson.dumps({"records": records}).decode(), "application/json"
    chunks = read(data, media, id_columns=["a", "b"])
    assert ids_of(chunks) == [[f"a{i}", f"b{i}"] for i in range(3)]


def test_every_reader_gathers_its_chunks_with_one_builder() -> None:
    """ChunkBuilder (gateway/jobdata/chunks.py) is the one place rows become chunks."""
    builder = ChunkBuilder(2, with_ids=True)
    assert builder.add([1], ["a"]) is None
    assert builder.add([2], ["b"]) == Chunk([[1], [2]], [["a"], ["b"]])
    assert builder.add([3], ["c"]) is None
    assert list(builder.rest()) == [Chunk([[3]], [["c"]])]
    assert list(builder.rest()) == []
    without = ChunkBuilder(1, with_ids=False)
    assert without.add([1], None) == Chunk([[1]], None)
    assert list(without.rest()) == []
    for module in (csv_rows, ndjson_rows, json_rows):
        source = inspect.getsource(module)
        assert "ChunkBuilder(" in source and "Chunk(" not in source.replace("ChunkBuilder(", "")


def test_body_is_left_open() -> None:
    with body_of(csv_of([[1, 2, 3, 4]])) as body:
        chunks = iter_chunks(body, "text/csv", IRIS, [], 10, 10)
        assert len(list(chunks)) == 1
        del chunks
        gc.collect()
        assert not body.closed
        body.seek(0)
        assert body.read().startswith(HEADER.encode())


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_columns_come_out_in_signature_order() -> None:
    data = "petal_width,sepal_length,petal_length,sepal_width\n4,1,3,2\n"
    assert rows_of(read(data)) == [[1.0, 2.0, 3.0, 4.0]]


def test_csv_quoted_id_with_commas_and_newlines() -> None:
    data = (
        "id," + HEADER + '\n"a, b",1,2,3,4\n"line one\nline two",5,6,7,8\n"say ""hi""",9,10,11,12\n'
    )
    chunks = read(data, id_columns=["id"])
    assert ids_of(chunks) == [["a, b"], ["line one\nline two"], ['say "hi"']]
    assert rows_of(chunks)[1] == [5.0, 6.0, 7.0, 8.0]


def test_csv_line_numbers_count_lines_inside_quoted_fields() -> None:
    data = "id," + HEADER + '\n"two\nlines",1,2,3,4\nok,5,6,7,' + SECRET + "\n"
    message = error_of(data, id_columns=["id"])
    assert message == "row 1 (line 4), column 'petal_width': expected a number"


def test_csv_ids_are_kept_as_strings() -> None:
    data = "id," + HEADER + "\n007,1,2,3,4\n,5,6,7,8\n"
    assert ids_of(read(data, id_columns=["id"])) == [["007"], [""]]


def test_csv_mixed_types() -> None:
    data = "label,flag,n,x\nhello,TRUE,3,1.5\n,0,-2.0,2\n x ,false,1e3,-0\n"
    rows = rows_of(read(data, signature=MIXED))
    assert rows == [[1.5, 3, True, "hello"], [2.0, -2, False, ""], [-0.0, 1000, False, " x "]]
    assert all(type(row[1]) is int for row in rows)


@pytest.mark.parametrize("cell", ["true", "True", "FALSE", "1", "0", " true "])
def test_csv_boolean_spellings(cell: str) -> None:
    rows = rows_of(read(f"x,n,flag,label\n1,2,{cell},s\n", signature=MIXED))
    assert rows[0][2] is (cell.strip().lower() in ("true", "1"))


def test_csv_byte_order_mark_is_dropped() -> None:
    assert rows_of(read(b"\xef\xbb\xbf" + csv_of([[1, 2, 3, 4]]).encode())) == [
        [1.0, 2.0, 3.0, 4.0]
    ]


def test_csv_crlf_and_blank_lines() -> None:
    data = HEADER + "\r\n1,2,3,4\r\n\r\n5,6,7,8\r\n\r\n"
    assert rows_of(read(data)) == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        (SECRET, "expected a number"),
        ("", MISSING_REFUSED),
        ("  ", MISSING_REFUSED),
        ("nan", "must be a finite number"),
        ("NaN", "must be a finite number"),
        ("inf", "must be a finite number"),
        ("-Infinity", "must be a finite number"),
        ("1e39", "number out of range"),
        ("-4e38", "number out of range"),
        ("1e400", "number out of range"),
    ],
)
def test_csv_bad_numbers(cell: str, problem: str) -> None:
    data = csv_of([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]]).replace("6,7,8", f"6,7,{cell}")
    assert error_of(data) == f"row 1 (line 3), column 'petal_width': {problem}"


#: What changed for CSV numbers with issue 14 (one grammar, JSON's): a cell and what it reads
#: as now. float() used to read every one of them (the refused ones as 10, 0.5, 1 or 7).
JSON_GRAMMAR_CHANGES = [
    ("1_0", NOT_JSON_NUMBER),
    ("\u0661\u0660", NOT_JSON_NUMBER),  # Arabic-Indic digits
    ("\uff17", NOT_JSON_NUMBER),  # a fullwidth 7
    (".5", NOT_JSON_NUMBER),
    ("-.5", NOT_JSON_NUMBER),
    ("+1", NOT_JSON_NUMBER),
    (" 1", NOT_JSON_NUMBER),
    ("1 ", NOT_JSON_NUMBER),
    ("\t1", NOT_JSON_NUMBER),
    ("1.", NOT_JSON_NUMBER),
    ("07", NOT_JSON_NUMBER),
    ("1e5", 100000.0),
    ("1E+5", 100000.0),
    ("-0.5e-3", -0.0005),
    ("Infinity", "must be a finite number"),
    ("nan", "must be a finite number"),
]


#: An upload with one cell to fill in, of a signature of numbers only and of a mixed one (each
#: has its own fast path): the signature, the upload, the cell's column and its position.
UPLOADS_OF_A_CELL = {
    "all-numeric": (IRIS, HEADER + "\n1,2,3,4\n5,6,7,{}\n", "petal_width", 3),
    "mixed": (MIXED, "x,n,flag,label\n1,2,true,s\n{},2,true,s\n", "x", 0),
}


@pytest.mark.parametrize(("cell", "read_as"), JSON_GRAMMAR_CHANGES)
@pytest.mark.parametrize("upload", UPLOADS_OF_A_CELL)
def test_csv_numbers_are_read_by_json_grammar(cell: str, read_as: float | str, upload: str) -> None:
    signature, template, column, position = UPLOADS_OF_A_CELL[upload]
    data = template.format(cell)
    if isinstance(read_as, str):
        assert error_of(data, signature=signature) == (
            f"row 1 (line 3), column '{column}': {read_as}"
        )
    else:
        assert rows_of(read(data, signature=signature))[1][position] == read_as


@pytest.mark.parametrize(
    ("value", "message"),
    [
        *[(token, ": not a JSON object") for token in ("1_0", "\u0661", ".5", "+1", "1.", "07")],
        ("Infinity", f": {NAN_LITERAL}"),
        # A string is never read as a number, however it is spelt.
        *[(f'"{token}"', ", column 'petal_width': expected a number") for token in ("1", "1_0")],
    ],
)
def test_ndjson_numbers_are_json_numbers(value: str, message: str) -> None:
    """orjson parses NDJSON to RFC 8259: a number a CSV cell may not spell, NDJSON may not."""
    line = '{"sepal_length": 1, "sepal_width": 1, "petal_length": 1, "petal_width": ' + value
    assert error_of(line + "}\n", "application/x-ndjson") == f"row 0 (line 1){message}"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,2.5,true,s", "column 'n': expected an integer"),
        ("1,1e39,true,s", "column 'n': number out of range"),
        ("1,nan,true,s", "column 'n': must be a finite number"),
        ("1,2,yes,s", "column 'flag': expected true or false"),
        ("1,2,,s", f"column 'flag': {MISSING_REFUSED}"),
        ("x1,2,true,s", "column 'x': expected a number"),
        ("inf,2.5,true,s", "column 'x': must be a finite number"),
    ],
)
def test_csv_bad_values_of_mixed_types(row: str, message: str) -> None:
    assert error_of(f"x,n,flag,label\n1,2,true,s\n{row}\n", signature=MIXED) == (
        f"row 1 (line 3), {message}"
    )


def test_csv_bad_value_never_echoed() -> None:
    message = error_of(csv_of([[1, 2, 3, SECRET]]))
    assert message == "row 0 (line 2), column 'petal_width': expected a number"


@pytest.mark.parametrize(("line", "got"), [("1,2,3", 3), ("1,2,3,4,5", 5), ("1", 1)])
def test_csv_wrong_number_of_fields(line: str, got: int) -> None:
    data = HEADER + "\n1,2,3,4\n\n" + line + "\n"
    assert error_of(data) == f"row 1 (line 4): expected 4 fields, got {got}"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (HEADER + '\n1,2,3,4\n1,2,3,"4"x\n', 3),  # text after a closing quote
        (HEADER + '\n1,2,3,4\n1,2,3,"4\n5,6,7,8\n', 3),  # never closed
        ('\nsepal_length,"sepal_width\n', 2),  # in the header
    ],
)
def test_unparsable_csv_names_the_line(data: str, line: int) -> None:
    assert error_of(data) == f"line {line}: not valid CSV"


def test_csv_not_utf8() -> None:
    assert "not valid UTF-8" in error_of(HEADER.encode() + b"\n1,2,3,\xff\n")


@pytest.mark.parametrize(
    ("header", "id_columns", "message"),
    [
        (HEADER + ",sepal_width", [], "duplicate column(s) 'sepal_width'"),
        ("sepal_length,sepal_width,petal_length", [], "missing column(s) 'petal_width'"),
        (HEADER, ["id"], "missing id column(s) 'id'"),
        (HEADER + ",x,y", [], "unknown column(s) 'x', 'y'"),
        (HEADER + ",id", [], "unknown column(s) 'id'"),
        (HEADER + ",", [], "unknown column(s) ''"),
        (HEADER + ",a,b,c,d", [], "unknown column(s) 'a', 'b', 'c' and 1 more"),
    ],
)
def test_csv_header_problems(header: str, id_columns: list[str], message: str) -> None:
    found = error_of(header + "\n", id_columns=id_columns).split(";")[0]
    assert found == f"line 1 (header): {message}"


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "records"])
def test_an_unknown_id_column_names_the_id_columns_parameter(fmt: str) -> None:
    # The docs' own example once failed this way with no hint of the fix.
    data, media, _ = upload(fmt, 3, with_ids=True)
    message = error_of(data, media)
    assert "unknown column(s) 'id'" in message
    assert "?id_columns=id" in message and "--id-columns" in message


def test_csv_long_column_names_are_cut_short() -> None:
    message = error_of(HEADER + "," + "z" * 1000 + "\n")
    assert len(message) < 400 and "z" * 65 not in message


@pytest.mark.parametrize("data", ["", "\n\n", HEADER + "\n", HEADER + "\n\n\n"])
def test_csv_without_rows(data: str) -> None:
    assert error_of(data) == "the upload has no rows"


# --- NDJSON ------------------------------------------------------------------------------------


def test_ndjson_blank_lines_are_skipped_but_counted_as_lines() -> None:
    data = b"\n" + ndjson_of(iris_records(1)) + b"  \n\n" + ndjson_of(iris_records(2)[1:])
    assert len(rows_of(read(data, "application/x-ndjson"))) == 2
    bad = data + b'{"sepal_length": 1}\n'
    assert error_of(bad, "application/x-ndjson").startswith("row 2 (line 6): missing feature(s)")


def test_ndjson_mixed_types() -> None:
    data = ndjson_of([{"x": 1, "n": 2.0, "flag": True, "label": "a"}])
    assert rows_of(read(data, "application/x-ndjson", signature=MIXED)) == [[1, 2.0, True, "a"]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"sepal_length": 1, "sepal_wid', "row 1 (line 2): not a JSON object"),
        (b"[1, 2, 3, 4]", "row 1 (line 2): not a JSON object"),
        (b'"' + SECRET.encode() + b'"', "row 1 (line 2): not a JSON object"),
        (SECRET.encode(), "row 1 (line 2): not a JSON object"),
        (b'{"sepal_length": NaN}', f"row 1 (line 2): {NAN_LITERAL}"),
        (
            b'{"sepal_length": 1e400, "sepal_width": 1, "petal_length": 1, "petal_width": 1}',
            "row 1 (line 2): a number is out of range",
        ),
        (
            b'{"sepal_length": 1, "sepal_width": 1, "petal_length": 1}',
            "row 1 (line 2): missing feature(s) 'petal_width'",
        ),
        (
            b'{"sepal_length": 1, "sepal_width": 1, "petal_length": 1, "petal_width": 1, "z": 1}',
            "row 1 (line 2): unknown column(s) 'z'",
        ),
        (
            b'{"sepal_length": 1, "sepal_width": "'
            + SECRET.encode()
            + b'", "petal_length": 1, "petal_width": 1}',
            "row 1 (line 2), column 'sepal_width': expected a number",
        ),
        (
            b'{"sepal_length": 1, "sepal_width": true, "petal_length": 1, "petal_width": 1}',
            "row 1 (line 2), column 'sepal_width': expected a number",
        ),
        (
            b'{"sepal_length": 1, "sepal_width": 1, "petal_length": 1, "petal_width": -1e39}',
            "row 1 (line 2), column 'petal_width': number out of range",
        ),
    ],
)
def test_ndjson_problems(line: bytes, message: str) -> None:
    found = error_of(ndjson_of(iris_records(1)) + line + b"\n", "application/x-ndjson")
    assert found.split(";")[0] == message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"x": 1, "n": 2.5, "flag": True, "label": "a"}, "column 'n': expected an integer"),
        ({"x": 1, "n": 2, "flag": 1, "label": "a"}, "column 'flag': expected true or false"),
        ({"x": 1, "n": 2, "flag": True, "label": 7}, "column 'label': expected a string"),
        ({"x": None, "n": 2, "flag": True, "label": "a"}, f"column 'x': {MISSING_REFUSED}"),
    ],
)
def test_ndjson_bad_values_of_mixed_types(record: dict[str, Any], message: str) -> None:
    assert error_of(ndjson_of([record]), "application/x-ndjson", signature=MIXED) == (
        f"row 0 (line 1), {message}"
    )


def test_ndjson_id_problems() -> None:
    records = iris_records(2, with_id=True)
    del records[1]["id"]
    assert error_of(ndjson_of(records), "application/x-ndjson", id_columns=["id"]) == (
        "row 1 (line 2): missing id column(s) 'id'"
    )
    records[1]["id"] = {"nested": SECRET}
    assert error_of(ndjson_of(records), "application/x-ndjson", id_columns=["id"]) == (
        "row 1 (line 2), id column 'id': expected a string, number, boolean or null"
    )


def test_ndjson_ids_keep_their_json_types() -> None:
    records = iris_records(4)
    for record, value in zip(records, ["a", 7, None, True], strict=True):
        record["id"] = value
    chunks = read(ndjson_of(records), "application/x-ndjson", id_columns=["id"])
    assert ids_of(chunks) == [["a"], [7], [None], [True]]


@pytest.mark.parametrize("data", [b"", b"\n \n\r\n"])
def test_ndjson_without_rows(data: bytes) -> None:
    assert error_of(data, "application/x-ndjson") == "the upload has no rows"


# --- JSON --------------------------------------------------------------------------------------


def test_json_instance_ids_are_normalised_to_lists() -> None:
    data = orjson.dumps({"instances": [[1, 2, 3, 4]] * 3, "ids": ["a", 2, None]})
    assert ids_of(read(data, "application/json")) == [["a"], [2], [None]]
    data = orjson.dumps({"instances": [[1, 2, 3, 4]] * 2, "ids": [["a", 1], ["b", 2]]})
    assert ids_of(read(data, "application/json")) == [["a", 1], ["b", 2]]


def test_json_instance_values_are_unchanged() -> None:
    rows = [[1, 2.5, 3, 4.0]]
    assert rows_of(read(orjson.dumps({"instances": rows}), "application/json")) == rows


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"[[1, 2, 3, 4]]", "the body must be an object with either 'instances' or 'records'"),
        (b'{"rows": []}', "the body must be an object with either 'instances' or 'records'"),
        (b'{"instances": [], "records": []}', "the body must be an object with either"),
        (b'{"instances": [[1, 2, 3, 4]], "extra": 1}', "unknown field(s) 'extra'"),
        (b'{"instances": {"a": 1}}', "'instances' must be a list of rows"),
        (b'{"records": "' + SECRET.encode() + b'"}', "'records' must be a list of rows"),
        (b'{"instances": []}', "the upload has no rows"),
        (b'{"records": []}', "the upload has no rows"),
        (b"", "the upload has no rows"),
        (b'{"instances": [[1, 2, 3, NaN]]}', NAN_LITERAL),
        (b'{"instances": [[1, 2, 3, Infinity]]}', NAN_LITERAL),
        (b'{"instances": [[1, 2, 3, ' + SECRET.encode() + b"]]}", "the body is not valid JSON"),
        (b'{"instances": [[1, 2, 3, 1e400]]}', "a number is out of range"),
        (
            b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4e38]]}',
            "row 1, column 'petal_width': number out of range",
        ),
        (b'{"instances": [[1, 2, 3, 4], [1, 2, 3]]}', "row 1: expected 4 values, got 3"),
        (b'{"instances": [[1, 2, 3, 4], {"a": 1}]}', "row 1: expected a list of 4 values"),
        (
            b'{"instances": [[1, 2, 3, 4], [1, "' + SECRET.encode() + b'", 3, 4]]}',
            "row 1, column 'sepal_width': expected a number",
        ),
        (b'{"instances": [[1, 2, 3, 4]], "ids": [1, 2]}', "'ids' must be a list with one entry"),
        (b'{"instances": [[1, 2, 3, 4]], "ids": "a"}', "'ids' must be a list with one entry"),
        (b'{"instances": [[1, 2, 3, 4]], "ids": [[]]}', "row 0: an id must be a string"),
        (b'{"instances": [[1, 2, 3, 4]], "ids": [{"a": 1}]}', "row 0: an id must be a string"),
        (
            b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4]], "ids": [["a", 1], "b"]}',
            "row 1: expected 2 id value(s), got 1",
        ),
        (b'{"records": [{"sepal_length": 1}], "ids": [1]}', "'ids' goes with 'instances'"),
        (
            b'{"records": [{"sepal_length": 1, "sepal_width": 1, "petal_length": 1}]}',
            "row 0: missing feature(s) 'petal_width'",
        ),
        (b'{"records": [[1, 2, 3, 4]]}', "row 0: expected an object of feature names to values"),
    ],
)
def test_json_problems(document: bytes, message: str) -> None:
    assert error_of(document, "application/json").startswith(message)


def test_json_instances_refuse_id_columns() -> None:
    data = orjson.dumps({"instances": [[1, 2, 3, 4]]})
    assert "send 'ids' with 'instances'" in error_of(data, "application/json", id_columns=["id"])


def test_json_records_without_their_id_column() -> None:
    data = orjson.dumps({"records": iris_records(2)})
    assert error_of(data, "application/json", id_columns=["id"]) == (
        "row 0: missing id column(s) 'id'"
    )


@pytest.mark.parametrize(
    "value",
    [1, -1, 2.5, 0, 3.0e38, -3.0e38, 3.1e38, 1e39, True, False, None, "1", [1], {"a": 1}],
)
@pytest.mark.parametrize("kind", ["double", "float", "long", "integer", "boolean", "string"])
def test_json_checks_match_the_sync_api(kind: str, value: Any) -> None:
    """A record is refused here exactly when registry.signature refuses it, with its message."""
    feature = Feature("v", kind)
    try:
        _check_value(0, feature, value)
        expected = None
    except InvalidInput as exc:
        expected = exc.message
    data = orjson.dumps({"records": [{"v": value}]})
    if expected is None:
        assert rows_of(read(data, "application/json", signature=Signature((feature,)))) == [[value]]
    else:
        assert error_of(data, "application/json", signature=Signature((feature,))) == expected


@pytest.mark.parametrize("value", [1, 2.5, 3.0e38, 1e39, True, None, "1", [1], {"a": 1}])
@pytest.mark.parametrize("kind", ["double", "long", "boolean", "string"])
def test_ndjson_checks_match_the_signature_rules(kind: str, value: Any) -> None:
    """An NDJSON record is refused exactly when registry.signature's value rules refuse it."""
    signature = Signature((Feature("v", kind),))
    data = ndjson_of([{"v": value}])
    problem = value_problem(kind, value)
    if problem is None:
        assert rows_of(read(data, "application/x-ndjson", signature=signature)) == [[value]]
    else:
        message = error_of(data, "application/x-ndjson", signature=signature)
        assert message == f"row 0 (line 1), column 'v': {problem}"


@pytest.mark.parametrize(
    "cell", ["1.5", " 7 ", "2.5", "1e39", "1e400", "-inf", "nan", "", "x", "TRUE", "0", "no"]
)
@pytest.mark.parametrize("kind", ["double", "long", "boolean", "string"])
def test_csv_checks_match_the_signature_rules(kind: str, cell: str) -> None:
    """A CSV cell is refused exactly when registry.signature's cell rules refuse it."""
    signature = Signature((Feature("v", kind),))
    data = f"id,v\nr0,{cell}\n"  # an id column, so that an empty cell is not a blank line
    problem = cell_problem(kind, cell)
    if problem is None:
        assert rows_of(read(data, signature=signature, id_columns=["id"])) == [
            cells_parser(signature)([cell])
        ]
    else:
        message = error_of(data, signature=signature, id_columns=["id"])
        assert message == f"row 0 (line 2), column 'v': {problem}"


@pytest.mark.parametrize(
    "document", [b"not json", b"[]", b'{"instances": 1}', b'{"records": [1]}', b""]
)
def test_json_problems_raise_while_iterating_not_at_the_call(document: bytes) -> None:
    with body_of(document) as body:
        chunks = iter_chunks(body, "application/json", IRIS, [], 10, 10)
        with pytest.raises(InvalidInput):
            next(chunks)


# --- row limit ---------------------------------------------------------------------------------


class CountingStream(io.RawIOBase):
    """A file backed by a generator of lines that counts how many lines were handed out."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self.lines = lines
        self.served = 0
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.lines)
            except StopIteration:
                return 0
            self.served += 1
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def endless_csv() -> Iterator[bytes]:
    yield (HEADER + "\n").encode()
    for i in range(1_000_000):
        yield f"{i},1,2,3\n".encode()


def endless_ndjson() -> Iterator[bytes]:
    for record in iris_records(1_000_000):
        yield orjson.dumps(record) + b"\n"


@pytest.mark.parametrize(
    ("lines", "media"), [(endless_csv, "text/csv"), (endless_ndjson, "application/x-ndjson")]
)
def test_too_many_rows_stops_reading(lines: Any, media: str) -> None:
    stream = CountingStream(lines())
    body = io.BufferedReader(stream)
    chunks = iter_chunks(body, media, IRIS, [], 4, 10)
    with pytest.raises(TooManyJobRows) as caught:
        list(chunks)
    assert caught.value.code == "too_many_rows"
    assert isinstance(caught.value, InvalidInput)
    assert "10" in caught.value.message
    assert stream.served < 100  # the rows up to the limit and a little read-ahead, not 1,000,000


def test_exactly_max_rows_is_fine() -> None:
    data, media, _ = upload("csv", 10, False)
    assert len(rows_of(read(data, media, max_rows=10, chunk_size=3))) == 10
    with pytest.raises(TooManyJobRows):
        read(data, media, max_rows=9)


@pytest.mark.parametrize("fmt", ["instances", "records"])
def test_json_too_many_rows(fmt: str) -> None:
    data, media, _ = upload(fmt, 11, False)
    with pytest.raises(TooManyJobRows, match="more than 10 rows"):
        read(data, media, max_rows=10)
    assert len(rows_of(read(data, media, max_rows=11))) == 11
