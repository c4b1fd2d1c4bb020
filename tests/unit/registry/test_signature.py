"""Validation of client rows against a model signature (registry/signature.py)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import TensorSpec

from kernel.errors import InvalidInput
from registry.cells import JSON_NUMBER, NOT_JSON_NUMBER, cell_problem, cells_parser, cells_problem
from registry.signature import (
    MAX_MAGNITUDE,
    MISSING_REFUSED,
    Feature,
    Signature,
    signature_from_mlflow,
    value_problem,
)

MIXED = Signature(
    (
        Feature("length", "double"),
        Feature("count", "long"),
        Feature("flag", "boolean"),
        Feature("colour", "string"),
    )
)


def refused(check, rows) -> str:
    with pytest.raises(InvalidInput) as caught:
        check(rows)
    return caught.value.message


# -- check_instances -------------------------------------------------------------------------


def test_instances_that_fit_come_back_unchanged() -> None:
    rows = [[1.5, 2, True, "red"], [0, 3.0, False, ""]]
    assert MIXED.check_instances(rows) == rows


@pytest.mark.parametrize("rows", [None, {"a": 1}, "1,2,3,4", 5])
def test_instances_not_a_list_are_refused(rows) -> None:
    assert "'instances' must be a list" in refused(MIXED.check_instances, rows)


def test_instances_without_rows_are_refused() -> None:
    assert "'instances' has no rows" in refused(MIXED.check_instances, [])


def test_instance_row_that_is_not_a_list_names_the_row() -> None:
    message = refused(MIXED.check_instances, [[1.0, 2, True, "a"], {"length": 1.0}])
    assert message.startswith("row 1:")
    assert "length" not in message


@pytest.mark.parametrize("row", [[1.0, 2, True], [1.0, 2, True, "a", "extra"]])
def test_instance_of_wrong_width_is_refused(row) -> None:
    message = refused(MIXED.check_instances, [row])
    assert f"row 0: expected 4 values, got {len(row)}" == message


def test_bool_where_a_number_is_wanted_is_refused() -> None:
    message = refused(MIXED.check_instances, [[True, 2, True, "a"]])
    assert message == "row 0, column 'length': expected a number"
    assert "True" not in message and "true" not in message


def test_string_where_a_number_is_wanted_is_refused_without_echo() -> None:
    message = refused(MIXED.check_instances, [[1.0, 2, True, "a"], ["s3cr3t", 2, True, "a"]])
    assert message == "row 1, column 'length': expected a number"
    assert "s3cr3t" not in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    message = refused(MIXED.check_instances, [[value, 2, True, "a"]])
    # The exact text: "finite" contains "inf", so a substring check would prove nothing.
    assert message == "row 0, column 'length': must be a finite number"
    assert "nan" not in message.lower() and "infinity" not in message.lower()


def test_non_finite_float_in_an_integer_column_is_refused() -> None:
    message = refused(MIXED.check_instances, [[1.0, float("nan"), True, "a"]])
    assert message == "row 0, column 'count': must be a finite number"


def test_non_integer_float_in_a_long_column_is_refused() -> None:
    message = refused(MIXED.check_instances, [[1.0, 2.75, True, "a"]])
    assert message == "row 0, column 'count': expected an integer"
    assert "2.75" not in message


def test_non_integer_float_in_an_integer_column_is_refused() -> None:
    signature = Signature((Feature("n", "integer"),))
    assert "expected an integer" in refused(signature.check_instances, [[0.5]])


def test_integral_float_in_a_long_column_is_accepted() -> None:
    assert MIXED.check_instances([[1.0, 4.0, True, "a"]]) == [[1.0, 4.0, True, "a"]]


@pytest.mark.parametrize("value", [1, 0, "true"])
def test_boolean_column_wants_true_or_false(value) -> None:
    message = refused(MIXED.check_instances, [[1.0, 2, value, "a"]])
    assert message == "row 0, column 'flag': expected true or false"


@pytest.mark.parametrize("value", [1, 1.5, True, ["x"]])
def test_string_column_wants_a_string(value) -> None:
    message = refused(MIXED.check_instances, [[1.0, 2, True, value]])
    assert message == "row 0, column 'colour': expected a string"


@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_none_is_a_missing_value_this_signature_refuses(at: int) -> None:
    row: list[object] = [1.0, 2, True, "a"]
    row[at] = None
    message = refused(MIXED.check_instances, [row])
    assert message == f"row 0, column '{MIXED.names[at]}': {MISSING_REFUSED}"


# -- check_records ---------------------------------------------------------------------------


def test_records_come_back_in_signature_order() -> None:
    records = [
        {"colour": "red", "flag": False, "count": 2, "length": 1.5},
        {"flag": True, "length": 0.5, "colour": "", "count": 7},
    ]
    assert MIXED.check_records(records) == [[1.5, 2, False, "red"], [0.5, 7, True, ""]]


@pytest.mark.parametrize("rows", [None, {"length": 1.0}, "x"])
def test_records_not_a_list_are_refused(rows) -> None:
    assert "'records' must be a list" in refused(MIXED.check_records, rows)


def test_records_without_rows_are_refused() -> None:
    assert "'records' has no rows" in refused(MIXED.check_records, [])


def test_record_that_is_not_an_object_names_the_row() -> None:
    good = {"length": 1.0, "count": 2, "flag": True, "colour": "a"}
    message = refused(MIXED.check_records, [good, [1.0, 2, True, "a"]])
    assert message.startswith("row 1:")


def test_record_missing_a_feature_names_it() -> None:
    message = refused(MIXED.check_records, [{"length": 1.0, "flag": True, "colour": "a"}])
    assert message == "row 0: missing feature(s) 'count'"


def test_record_with_an_unknown_feature_names_it_but_not_its_value() -> None:
    record = {"length": 1.0, "count": 2, "flag": True, "colour": "a", "petal": "s3cr3t"}
    message = refused(MIXED.check_records, [record])
    assert message == "row 0: unknown feature(s) 'petal'"
    assert "s3cr3t" not in message


def test_unknown_feature_names_are_bounded_in_the_message() -> None:
    record = {"length": 1.0, "count": 2, "flag": True, "colour": "a"}
    record.update({f"extra{i}_" + "x" * 100: 1 for i in range(10)})
    message = refused(MIXED.check_records, [record])
    assert "extra2_" in message and "extra3_" not in message
    assert "x" * 65 not in message


def test_record_value_of_the_wrong_type_names_row_and_column_only() -> None:
    good = {"length": 1.0, "count": 2, "flag": True, "colour": "a"}
    bad = {"length": "s3cr3t", "count": 2, "flag": True, "colour": "a"}
    message = refused(MIXED.check_records, [good, good, bad])
    assert message == "row 2, column 'length': expected a number"
    assert "s3cr3t" not in message


def test_record_with_nan_is_refused() -> None:
    bad = {"length": float("nan"), "count": 2, "flag": True, "colour": "a"}
    message = refused(MIXED.check_records, [bad])
    assert message == "row 0, column 'length': must be a finite number"


def test_record_with_bool_in_numeric_column_is_refused() -> None:
    bad = {"length": 1.0, "count": False, "flag": True, "colour": "a"}
    assert refused(MIXED.check_records, [bad]) == "row 0, column 'count': expected a number"


# -- the Signature itself --------------------------------------------------------------------


def test_names_types_and_all_numeric() -> None:
    numeric = Signature((Feature("a", "double"), Feature("b", "long")))
    assert numeric.names == ("a", "b")
    assert numeric.all_numeric
    assert not MIXED.all_numeric
    assert numeric.as_dict() == [
        {"name": "a", "type": "double"},
        {"name": "b", "type": "long"},
    ]


def test_derived_names_and_types_leave_equality_hash_and_repr_to_the_features() -> None:
    same = Signature(MIXED.features)
    assert same == MIXED and hash(same) == hash(MIXED)
    assert same.types == ("double", "long", "boolean", "string")
    assert repr(same) == f"Signature(features={MIXED.features!r})"


# -- the value rules: JSON values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        ("double", 1, None),
        ("double", -2.5, None),
        ("double", MAX_MAGNITUDE, None),
        ("double", 10**400, "number out of range"),
        ("double", float("-inf"), "must be a finite number"),
        ("double", False, "expected a number"),
        ("double", "1", "expected a number"),
        ("float", None, MISSING_REFUSED),
        ("string", None, MISSING_REFUSED),
        ("long", 3.0, None),
        ("long", 3.5, "expected an integer"),
        ("integer", -4e38, "number out of range"),
        ("boolean", True, None),
        ("boolean", 0, "expected true or false"),
        ("string", "", None),
        ("string", 1, "expected a string"),
        # A type without rules of its own (signature_from_mlflow maps those to double).
        ("binary", object(), None),
    ],
)
def test_value_problem(kind: str, value: object, problem: str | None) -> None:
    assert value_problem(kind, value) == problem


def test_row_problem_names_the_first_value_that_does_not_fit() -> None:
    assert MIXED.row_problem([1.5, 2, True, "red"]) is None
    assert MIXED.row_problem([1.5, 2.5, 7, "red"]) == ("count", "expected an integer")
    assert MIXED.row_problem([1.5, 2, 7, "red"]) == ("flag", "expected true or false")


@pytest.mark.parametrize("value", [1, 2.0, 2.5, 1e39, float("nan"), True, "1", None])
@pytest.mark.parametrize("kind", ["double", "float", "long", "integer", "boolean", "string"])
def test_row_problem_agrees_with_value_problem(kind: str, value: object) -> None:
    """The common case row_problem decides itself is exactly what value_problem accepts."""
    found = Signature((Feature("v", kind),)).row_problem([value])
    problem = value_problem(kind, value)
    assert found == (None if problem is None else ("v", problem))


# -- the value rules: CSV cells --------------------------------------------------------------

CELLS = {
    "double": [
        "1.5",
        " -2 ",
        "1e3",
        "3e38",
        "",
        " ",
        "x",
        "nan",
        "-inf",
        "Infinity",
        "1e39",
        "1e400",
    ],
    "long": ["3", "3.0", "-1e3", "3.5", "", "nan", "1e39"],
    "boolean": ["true", "FALSE", " 1 ", "0", "", "yes", "2"],
    "string": ["", " x ", "nan"],
}
CASES = [(kind, cell) for kind, cells in CELLS.items() for cell in cells]


@pytest.mark.parametrize(("kind", "cell"), CASES)
def test_cells_parser_refuses_exactly_what_cell_problem_explains(kind: str, cell: str) -> None:
    signature = Signature((Feature("v", kind),))
    parsed = cells_parser(signature)([cell])
    assert (parsed is None) == (cell_problem(kind, cell) is not None)
    found = cells_problem(signature, [cell])
    assert found == (None if parsed is not None else ("v", cell_problem(kind, cell)))


@pytest.mark.parametrize(
    ("kind", "cell", "problem"),
    [
        ("double", "", MISSING_REFUSED),
        ("double", "x", "expected a number"),
        ("double", "NaN", "must be a finite number"),
        ("double", "-inf", "must be a finite number"),
        ("double", "1e400", "number out of range"),
        ("float", "-4e38", "number out of range"),
        ("long", "3.5", "expected an integer"),
        ("boolean", " ", MISSING_REFUSED),
        ("boolean", "yes", "expected true or false"),
        ("string", "", None),
    ],
)
def test_cell_problem(kind: str, cell: str, problem: str | None) -> None:
    assert cell_problem(kind, cell) == problem


#: Spellings of a number: JSON's, and others that Python's float() reads (as it once read cells).
SPELLINGS = [
    *("0", "-0", "7", "10", "-12.5", "0.5", "1e5", "1E+5", "2e-3", "-1.5E3", "1e400"),
    *("1_0", "\u0661\u0660", "\uff11", ".5", "-.5", "+1", "1.", "1.e5", "01", "-01", "00"),
    *(" 1", "1 ", "\t1", "1\n", "\u00a01", "Infinity", "-inf", "nan", "NaN", "0x10", "1e", "-"),
]


def _orjson_number(text: str) -> bool:
    """Whether an RFC 8259 parser reads `text` as one number (JSON allows whitespace around a
    document, a cell takes none; orjson refuses a number too large for a double, 1e400)."""
    if text != text.strip():
        return False
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return "infinity" in str(exc)
    return type(value) in (int, float)


@pytest.mark.parametrize("cell", SPELLINGS)
def test_a_number_cell_is_exactly_a_json_number(cell: str) -> None:
    """One grammar for numbers: a CSV cell is a number exactly when JSON's parser says so."""
    json_number = _orjson_number(cell)
    assert (JSON_NUMBER.fullmatch(cell) is not None) == json_number
    problem = cell_problem("double", cell)
    assert (problem in (None, "number out of range")) == json_number
    parsed = cells_parser(Signature((Feature("v", "double"),)))([cell])
    assert (parsed is None) == (problem is not None)


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("1_0", NOT_JSON_NUMBER),  # float() read 10
        ("\u0661\u0660", NOT_JSON_NUMBER),  # Arabic-Indic digits: float() read 10
        ("\uff11", NOT_JSON_NUMBER),  # a fullwidth 1
        (".5", NOT_JSON_NUMBER),
        ("+1", NOT_JSON_NUMBER),
        (" 1", NOT_JSON_NUMBER),
        ("1\t", NOT_JSON_NUMBER),
        ("1.", NOT_JSON_NUMBER),
        ("007", NOT_JSON_NUMBER),
        ("1e5", None),
        ("-0", None),
        ("Infinity", "must be a finite number"),
        ("nan", "must be a finite number"),
        ("one", "expected a number"),
    ],
)
def test_cell_problem_of_spellings_float_takes_and_json_does_not(
    cell: str, problem: str | None
) -> None:
    assert cell_problem("double", cell) == problem


def test_cells_parser_reads_each_type() -> None:
    parse = cells_parser(MIXED)
    values = parse(["1.5", "3.0", " True ", " red "])
    assert values == [1.5, 3, True, " red "]
    assert values is not None and type(values[1]) is int
    assert parse(["1", "2", "0", ""]) == [1.0, 2, False, ""]
    numbers = cells_parser(Signature((Feature("a", "double"), Feature("b", "integer"))))
    assert numbers(["-0", "1e3"]) == [-0.0, 1000]


@pytest.mark.parametrize(
    ("cell", "fits"),
    [("2", True), ("-3e38", True), ("nan", False), ("4e38", False), ("-inf", False)],
)
def test_cells_parser_checks_a_single_numeric_column_among_others(cell: str, fits: bool) -> None:
    signature = Signature((Feature("label", "string"), Feature("n", "long")))
    values = cells_parser(signature)(["a", cell])
    assert values == (["a", int(float(cell))] if fits else None)


def test_cells_parser_without_numeric_columns() -> None:
    signature = Signature((Feature("label", "string"), Feature("flag", "boolean")))
    assert cells_parser(signature)(["nan", "1"]) == ["nan", True]
    assert cells_parser(signature)(["a", "nan"]) is None


def test_cells_problem_names_the_first_cell_that_does_not_parse() -> None:
    assert cells_problem(MIXED, ["1", "2", "true", "x"]) is None
    assert cells_problem(MIXED, ["1", "x", "maybe", "x"]) == ("count", "expected a number")


# -- signature_from_mlflow -------------------------------------------------------------------


def test_signature_from_a_column_schema_keeps_names_types_and_order() -> None:
    schema = Schema(
        [
            ColSpec("double", "sepal length (cm)"),
            ColSpec("long", "count"),
            ColSpec("boolean", "flag"),
            ColSpec("string", "colour"),
            ColSpec("float", "ratio"),
            ColSpec("integer", "n"),
        ]
    )
    signature = signature_from_mlflow(schema, n_features=None)
    assert signature.features == (
        Feature("sepal length (cm)", "double"),
        Feature("count", "long"),
        Feature("flag", "boolean"),
        Feature("colour", "string"),
        Feature("ratio", "float"),
        Feature("n", "integer"),
    )


def test_signature_from_a_column_schema_wins_over_the_feature_count() -> None:
    schema = Schema([ColSpec("double", "a"), ColSpec("double", "b")])
    assert signature_from_mlflow(schema, n_features=7).names == ("a", "b")


def test_signature_from_unnamed_columns_gets_positional_names() -> None:
    schema = Schema([ColSpec("double"), ColSpec("double")])
    assert signature_from_mlflow(schema, n_features=None).names == ("f0", "f1")


def test_signature_from_an_unusual_column_type_reads_as_double() -> None:
    schema = Schema([ColSpec("datetime", "when")])
    assert signature_from_mlflow(schema, None).features == (Feature("when", "double"),)


def test_signature_without_a_schema_uses_the_feature_count() -> None:
    signature = signature_from_mlflow(None, n_features=4)
    assert signature.features == tuple(Feature(f"f{i}", "double") for i in range(4))


def test_signature_from_a_tensor_schema_uses_the_feature_count() -> None:
    schema = Schema([TensorSpec(np.dtype("float64"), (-1, 3))])
    assert signature_from_mlflow(schema, n_features=3).names == ("f0", "f1", "f2")


def test_signature_without_schema_or_count_is_refused() -> None:
    with pytest.raises(InvalidInput):
        signature_from_mlflow(None, n_features=None)
