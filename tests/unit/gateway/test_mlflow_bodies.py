"""MLflow's scoring bodies read into positional rows (gateway/protocols/mlflow_bodies.py,
mlflow_tables.py), and its answers rendered (mlflow_scoring.py): pure, no server."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import orjson
import pandas as pd
import pytest

from gateway.http.errors import (
    EmptyBody,
    InvalidJson,
    TooManyRows,
    UnknownField,
    UnsupportedMediaType,
)
from gateway.protocols.mlflow_bodies import Body, body_format, parse_body
from gateway.protocols.mlflow_scoring import check_params, predictions
from kernel.errors import InvalidInput, ModelgateError
from registry.signature import Feature, Signature

#: The row limit of the tests' bodies (MODELGATE_MAX_SYNC_ROWS' default).
LIMIT = 1000

COLUMNS = ["a", "b", "c"]
SIGNATURE = Signature(tuple(Feature(name, "double") for name in COLUMNS))
#: `c` takes a missing value.
OPTIONAL = Signature((Feature("a", "double"), Feature("b", "double"), Feature("c", "double", True)))
#: A model logged without column names: Modelgate names them f0, f1, ...
UNNAMED = Signature(tuple(Feature(f"f{i}", "double") for i in range(3)))
ROWS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
RECORDS = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
SECRET = "s3cr3t-value"


def json_rows(body: Any, signature: Signature = SIGNATURE) -> Body:
    return parse_body("json", orjson.dumps(body), signature, LIMIT)


def refused(body: Any, signature: Signature = SIGNATURE) -> str:
    """The message of the InvalidInput (or subclass) a JSON body is refused with."""
    with pytest.raises(ModelgateError) as caught:
        json_rows(body, signature)
    return caught.value.message


def csv_rows(text: str, signature: Signature = SIGNATURE) -> list[Any]:
    return parse_body("csv", text.encode(), signature, LIMIT).rows


def parquet(frame: pd.DataFrame, **options: Any) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, **options)
    return out.getvalue()


# -- Content-Type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "form"),
    [
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("Application/JSON; charset=UTF-8", "json"),
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8", "csv"),
        ("application/vnd.apache.parquet", "parquet"),
    ],
)
def test_the_three_media_types_are_read(content_type: str, form: str) -> None:
    assert body_format(content_type) == form


def test_a_missing_content_type_is_a_clear_415() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        body_format(None)
    assert "no Content-Type" in caught.value.message
    assert "application/json, text/csv or application/vnd.apache.parquet" in caught.value.message


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-ndjson",
        "application/json; charset=latin-1",
        "text/csv; charset=utf-16",
        "application/json; format=pandas-split",  # MLflow 1.x's parameter
    ],
)
def test_other_types_charsets_and_parameters_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        body_format(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json;",  # an empty parameter (RFC 9110: `[ parameter ]`)
        "application/json; ;charset=utf-8",
        'application/json; charset="utf-8"',  # a quoted string is the same value
        'application/json; charset="UTF-8";',
        'application/json; charset="utf\\-8"',  # a quoted pair
        "application/json; charset = utf-8",  # whitespace around '=' is tolerated
    ],
)
def test_what_rfc_9110_allows_in_the_parameters_is_taken(content_type: str) -> None:
    assert body_format(content_type) == "json"


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/json; =utf-8", "malformed"),
        ("application/json; charset", "malformed"),
        ('application/json; charset="utf-8', "malformed"),  # an unclosed quote
        ("application/json; charset=utf-8 x", "malformed"),
        ("application/json; charset=utf-8; charset=latin-1", "malformed"),  # which one?
        ('application/json; charset="utf-8;q"', "must be UTF-8"),  # `;` inside the quotes
        ('application/json; format="pandas-split"', "no parameter but charset"),
    ],
)
def test_malformed_or_other_parameters_are_415(content_type: str, message: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        body_format(content_type)
    assert message in caught.value.message


@pytest.mark.parametrize("form", ["json", "csv", "parquet"])
@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_an_empty_body_is_refused(form: str, body: bytes) -> None:
    with pytest.raises(EmptyBody):
        parse_body(form, body, SIGNATURE, LIMIT)


# -- JSON: the top level ---------------------------------------------------------------------


def test_invalid_json_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidJson) as caught:
        parse_body("json", b'{"inputs": [' + SECRET.encode(), SIGNATURE, LIMIT)
    assert SECRET not in caught.value.message


def test_a_nan_literal_is_refused() -> None:
    with pytest.raises(InvalidInput, match="NaN"):
        parse_body("json", b'{"inputs": [{"a": NaN, "b": 1, "c": 2}]}', SIGNATURE, LIMIT)


@pytest.mark.parametrize("body", [[RECORDS], "dataframe_records", 3, None])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    assert "must be a JSON object with exactly one of 'dataframe_split'" in refused(body)


def test_an_unknown_field_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(UnknownField) as caught:
        json_rows({"dataframe_records": RECORDS, "signature_name": "serving_default"})
    assert caught.value.message == (
        "unknown field(s) 'signature_name': the accepted fields are 'dataframe_split', "
        "'dataframe_records', 'instances', 'inputs' and 'params'"
    )


def test_unknown_field_names_are_few_and_cut_short() -> None:
    body = {"inputs": RECORDS, **{f"{i}" + "y" * 500: 1 for i in range(9)}}
    message = refused(body)
    assert "y" * 63 in message and "y" * 64 not in message
    assert message.count("'") == 2 * 5 + 10  # five names, then the five accepted fields


def test_a_body_of_only_unknown_fields_lists_the_accepted_ones() -> None:
    assert "the accepted fields are 'dataframe_split'" in refused({"data": ROWS})


@pytest.mark.parametrize("body", [{}, {"params": {"k": 1}}])
def test_no_rows_field_is_refused(body: dict[str, Any]) -> None:
    assert refused(body) == (
        "give exactly one of 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'"
    )


def test_two_rows_fields_are_refused_and_named() -> None:
    message = refused({"inputs": RECORDS, "instances": RECORDS})
    assert message.endswith("; got 'instances', 'inputs'")


def test_params_travel_with_the_rows() -> None:
    body = json_rows({"dataframe_records": RECORDS, "params": {"temperature": 0.5}})
    assert body == Body("instances", ROWS, {"temperature": 0.5})
    assert json_rows({"dataframe_records": RECORDS}).params is None


# -- dataframe_split -------------------------------------------------------------------------


def test_split_in_the_signature_order_passes_the_rows_as_they_came() -> None:
    data = [list(row) for row in ROWS]
    body = parse_body(
        "json",
        orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}),
        SIGNATURE,
        LIMIT,
    )
    assert body == Body("instances", ROWS, None)


def test_split_with_an_index_answers_the_rows_in_order() -> None:
    split = {"columns": COLUMNS, "data": ROWS, "index": ["x", 7]}
    assert json_rows({"dataframe_split": split}).rows == ROWS


def test_split_columns_in_another_order_are_put_in_the_signature_order() -> None:
    split = {"columns": ["c", "a", "b"], "data": [[3.0, 1.0, 2.0]]}
    assert json_rows({"dataframe_split": split}).rows == [[1.0, 2.0, 3.0]]


def test_split_columns_the_signature_lacks_are_ignored() -> None:
    split = {"columns": ["b", "zz", "a", "c"], "data": [[2.0, SECRET, 1.0, 3.0]]}
    assert json_rows({"dataframe_split": split}).rows == [[1.0, 2.0, 3.0]]


def test_split_columns_must_all_be_there_a_missing_value_is_null() -> None:
    """A model that takes a missing value takes it as null, never as an absent column (as
    MLflow refuses a required column's absence, which Modelgate's signature cannot tell)."""
    split = {"columns": ["b", "a"], "data": [[2.0, 1.0]]}
    assert "missing column(s) 'c'" in refused({"dataframe_split": split}, OPTIONAL)
    split = {"columns": ["b", "a", "c"], "data": [[2.0, 1.0, None]]}
    assert json_rows({"dataframe_split": split}, OPTIONAL).rows == [[1.0, 2.0, None]]


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"columns": ["a", "b"], "data": [[1.0, 2.0]]}, "missing column(s) 'c'"),
        ({"columns": ["a", "b", "c", "a"], "data": [[1, 2, 3, 4]]}, "duplicate column(s) 'a'"),
        ({"columns": ["a", 1, "c"], "data": [[1, 2, 3]]}, "column names must be strings"),
        ({"columns": "abc", "data": ROWS}, "'dataframe_split.columns' must be a list"),
        ({"columns": COLUMNS, "data": {"a": 1}}, "'dataframe_split.data' must be a list of rows"),
        ({"columns": COLUMNS, "data": []}, "'dataframe_split.data' has no rows"),
        ({"columns": COLUMNS, "data": ROWS, "index": [1]}, "one label per row"),
        ({"columns": COLUMNS, "data": ROWS, "index": 5}, "one label per row"),
        ({"columns": COLUMNS}, "must be an object with 'data'"),
        ({"columns": COLUMNS, "data": ROWS, "orient": "split"}, "must be an object with 'data'"),
        (
            {"columns": ["c", "b", "a"], "data": [[1.0, 2.0]]},
            "'dataframe_split.data' row 0: expected a list of 3 values",
        ),
        (
            {"columns": ["c", "b", "a"], "data": [{"a": 1}]},
            "'dataframe_split.data' row 0: expected a list of 3 values",
        ),
    ],
)
def test_split_problems_are_named(split: dict[str, Any], message: str) -> None:
    assert message in refused({"dataframe_split": split})


@pytest.mark.parametrize("split", [ROWS, "x", None])
def test_split_that_is_not_an_object_is_refused(split: Any) -> None:
    assert "must be an object with 'data'" in refused({"dataframe_split": split})


def test_split_without_columns_fits_only_a_model_without_column_names() -> None:
    message = refused({"dataframe_split": {"data": ROWS}})
    assert message.startswith("'dataframe_split' has no 'columns', and this model's signature")
    assert "'a', 'b', 'c'" in message
    assert json_rows({"dataframe_split": {"data": ROWS}}, UNNAMED).rows == ROWS


# -- dataframe_records -----------------------------------------------------------------------


def test_records_come_back_positional_and_ignore_other_columns() -> None:
    records = [{"c": 3.0, "zz": SECRET, "b": 2.0, "a": 1.0}, RECORDS[1]]
    assert json_rows({"dataframe_records": records}).rows == ROWS


def test_records_of_a_one_column_model() -> None:
    signature = Signature((Feature("a", "double"),))
    assert json_rows({"dataframe_records": [{"a": 1.0}, {"a": 2}]}, signature).rows == [[1.0], [2]]


def test_records_must_hold_every_column_a_missing_value_is_null() -> None:
    records: list[dict[str, float | None]] = [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 4.0, "b": 5.0}]
    message = refused({"dataframe_records": records}, OPTIONAL)
    assert message == "'dataframe_records' row 1: missing column(s) 'c'"
    records[1]["c"] = None
    rows = json_rows({"dataframe_records": records}, OPTIONAL).rows
    assert rows == [[1.0, 2.0, 3.0], [4.0, 5.0, None]]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([RECORDS[0], {"a": 1.0, "b": 2.0}], "'dataframe_records' row 1: missing column(s) 'c'"),
        (
            [RECORDS[0], [1.0, 2.0, 3.0]],
            "'dataframe_records' row 1: expected an object of column names",
        ),
        ([1, 2], "'dataframe_records' row 0: expected an object of column names"),
        ([], "'dataframe_records' has no rows"),
    ],
)
def test_records_problems_are_named(records: list[Any], message: str) -> None:
    assert refused({"dataframe_records": records}) == message


def test_records_as_an_object_are_refused() -> None:
    message = refused({"dataframe_records": {"a": [1.0]}})
    assert message == "'dataframe_records' must be a list of records"


# -- instances and inputs --------------------------------------------------------------------


@pytest.mark.parametrize("field", ["instances", "inputs"])
def test_records_and_columns_are_read(field: str) -> None:
    assert json_rows({field: RECORDS}).rows == ROWS
    columns = {"c": [3.0, 6.0], "b": [2.0, 5.0], "a": [1.0, 4.0], "zz": [SECRET]}
    assert json_rows({field: columns}).rows == ROWS


def test_inputs_of_one_value_per_column_are_one_row() -> None:
    assert json_rows({"inputs": {"a": 1.0, "b": 2.0, "c": 3.0}}).rows == [[1.0, 2.0, 3.0]]


def test_inputs_columns_must_all_be_there() -> None:
    message = refused({"inputs": {"a": [1.0, 4.0], "b": [2.0, 5.0]}}, OPTIONAL)
    assert message == "'inputs': missing column(s) 'c'"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"a": [1.0], "b": [2.0, 3.0], "c": [4.0]}, "every column must be a list of the same"),
        ({"a": [1.0], "b": 2.0, "c": [4.0]}, "every column must be a list of the same"),
        ({"a": [], "b": [], "c": []}, "'inputs' has no rows"),
        ({"a": [1.0], "b": [2.0]}, "'inputs': missing column(s) 'c'"),
        ([], "'inputs' has no rows"),
        ("abc", "'inputs' must be a list of records or an object of columns"),
        ([1.0, 2.0, 3.0], "'inputs' must be a list of records or an object of columns"),
    ],
)
def test_inputs_problems_are_named(inputs: Any, message: str) -> None:
    assert message in refused({"inputs": inputs})


@pytest.mark.parametrize("field", ["instances", "inputs"])
def test_positional_rows_fit_only_a_model_without_column_names(field: str) -> None:
    message = refused({field: ROWS})
    assert message.startswith(f"'{field}' holds rows without column names")
    assert "send 'dataframe_split' with 'columns'" in message
    assert json_rows({field: ROWS}, UNNAMED).rows == ROWS


def test_a_long_signature_is_named_in_part() -> None:
    signature = Signature(tuple(Feature(f"x{i}", "double") for i in range(20)))
    message = refused({"inputs": [[1.0] * 20]}, signature)
    assert "'x7', ..." in message and "'x8'" not in message


def test_a_list_of_values_is_the_column_of_a_one_column_model() -> None:
    signature = Signature((Feature("a", "double"),))
    assert json_rows({"inputs": [1.0, 2.0]}, signature).rows == [[1.0], [2.0]]
    assert json_rows({"instances": [1.0]}, signature).rows == [[1.0]]


# -- CSV -------------------------------------------------------------------------------------


def test_csv_is_read_by_its_header() -> None:
    assert csv_rows("a,b,c\n1,2,3\n4.0,5,6e0\n") == ROWS
    assert csv_rows("c,a,b\r\n3,1,2\r\n\r\n6,4,5\r\n") == ROWS


def test_csv_of_pandas_with_its_index_ignores_the_index() -> None:
    text = pd.DataFrame(ROWS, columns=COLUMNS, index=[7, 8]).to_csv()
    assert text.startswith(",a,b,c")
    assert csv_rows(text) == ROWS


def test_csv_with_a_byte_order_mark_and_other_columns() -> None:
    assert csv_rows("\ufeffzz,a,b,c\nx,1,2,3\ny,4,5,6\n") == ROWS


def test_csv_empty_cells_are_missing_values_where_the_signature_takes_them() -> None:
    assert csv_rows("a,b,c\n1,2,\n", OPTIONAL) == [[1.0, 2.0, None]]


def test_csv_strings_and_booleans_follow_the_cell_rules() -> None:
    signature = Signature((Feature("n", "long"), Feature("s", "string"), Feature("t", "boolean")))
    assert csv_rows('s,t,n\n"x, y",true,3\n,0,4\n', signature) == [
        [3, "x, y", True],
        [4, "", False],
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"a,b,c\n1,{SECRET},3\n", "CSV row 0, column 'b': expected a number"),
        ("a,b,c\n1,2,3\n4,,6\n", "CSV row 1, column 'b': missing value"),
        ("a,b,c\n1,2,3\n1,2,3,4\n", "CSV row 1: expected 3 fields, got 4"),
        ("a,b\n1,2\n", "the CSV header: missing column(s) 'c'"),
        ("a,b,c,b\n1,2,3,4\n", "the CSV header: duplicate column(s) 'b'"),
        ("a,b,c\n", "the CSV body has no rows"),
        ('a,b,c\n1,"2,3\n', "the body is not valid CSV"),
        ("a,b,c\n1,2,1e400\n", "CSV row 0, column 'c': number out of range"),
    ],
)
def test_csv_problems_are_named_without_the_cells(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        csv_rows(text)
    assert caught.value.message.startswith(message)
    assert SECRET not in caught.value.message


def test_csv_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        parse_body("csv", b"a,b,c\n\xff,1,2\n", SIGNATURE, LIMIT)


# -- Parquet ---------------------------------------------------------------------------------


def test_parquet_columns_are_read_by_name_and_others_ignored() -> None:
    frame = pd.DataFrame(ROWS, columns=COLUMNS, index=[5, 9])[["c", "a", "b"]].assign(zz=SECRET)
    assert parse_body("parquet", parquet(frame), SIGNATURE, LIMIT) == Body("instances", ROWS, None)


def test_parquet_missing_numbers_are_null_and_types_are_kept() -> None:
    frame = pd.DataFrame({"a": [1.0, None], "b": [2, 5], "c": pd.Series([3.0, 6.0], dtype="f4")})
    rows = parse_body("parquet", parquet(frame, index=False), OPTIONAL, LIMIT).rows
    assert rows == [[1.0, 2, 3.0], [None, 5, 6.0]]
    assert type(rows[0][1]) is int


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"PAR1 not really", "the body is not a valid Parquet file"),
        (parquet(pd.DataFrame({"a": [1.0], "b": [2.0]})), "the Parquet columns: missing column(s)"),
        (parquet(pd.DataFrame({c: pd.Series([], dtype="f8") for c in COLUMNS})), "has no rows"),
    ],
)
def test_parquet_problems_are_named(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_body("parquet", body, SIGNATURE, LIMIT)


# -- answers and params (mlflow_scoring.py) --------------------------------------------------


class _Schema:
    def __init__(self, names: list[str] | None) -> None:
        self.names = names

    def is_tensor_spec(self) -> bool:
        return False

    def has_input_names(self) -> bool:
        return self.names is not None

    def input_names(self) -> list[str]:
        return self.names or []


def _model(flavor: str, outputs: list[str] | None = None, params: Any = None) -> Any:
    metadata = SimpleNamespace(
        get_output_schema=lambda: _Schema(outputs), get_params_schema=lambda: params
    )
    return SimpleNamespace(flavor=flavor, estimator=SimpleNamespace(metadata=metadata))


def test_labels_and_values_are_the_predictions() -> None:
    assert predictions(_model("sklearn", ["y"]), [0, 2]) == [0, 2]
    assert predictions(_model("python_function", None), [1.5, 2.5]) == [1.5, 2.5]


def test_a_pyfunc_frame_output_is_rendered_as_records() -> None:
    assert predictions(_model("python_function", ["y"]), [1.5, 2.5]) == [{"y": 1.5}, {"y": 2.5}]
    rendered = predictions(_model("python_function", ["p", "q"]), [[1, 2], [3, 4]])
    assert rendered == [{"p": 1, "q": 2}, {"p": 3, "q": 4}]


def test_params_are_ignored_unless_the_pyfunc_declares_some() -> None:
    for params in (None, {}, {"k": 1}, 5):
        check_params(_model("sklearn"), Body("instances", ROWS, params))
        check_params(_model("python_function"), Body("instances", ROWS, params))
    declares = _model("python_function", params=object())
    check_params(declares, Body("instances", ROWS, None))
    with pytest.raises(InvalidInput, match="declares params"):
        check_params(declares, Body("instances", ROWS, {"k": SECRET}))


def test_tables_are_read_no_further_than_the_row_limit() -> None:
    text = "a,b,c\n" + "1,2,3\n" * 5
    assert len(parse_body("csv", text.encode(), SIGNATURE, 5).rows) == 5
    with pytest.raises(TooManyRows):
        parse_body("csv", (text + "1,2,3\n").encode(), SIGNATURE, 5)
    frame = pd.DataFrame({"a": [1.0] * 6, "b": [2.0] * 6, "c": [3.0] * 6})
    with pytest.raises(TooManyRows):  # from the file's metadata, before any column is read
        parse_body("parquet", parquet(frame, index=False), SIGNATURE, 5)


def test_a_parquet_column_that_python_cannot_hold_is_a_400() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    far = pa.array([2**50], type=pa.timestamp("ms"))  # past datetime's year 9999
    table = pa.table({"a": [1.0], "b": [2.0], "c": far})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with pytest.raises(InvalidInput):
        parse_body("parquet", sink.getvalue(), SIGNATURE, LIMIT)
