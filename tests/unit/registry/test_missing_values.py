"""Missing values (issue 12): JSON null and empty CSV cells against a signature's `missing_ok`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import TensorSpec

from kernel.errors import InvalidInput
from registry.cells import cell_problem, cells_parser, cells_problem
from registry.signature import (
    MISSING_REFUSED,
    Feature,
    Signature,
    signature_from_mlflow,
)

#: A model that takes missing values in every numeric feature (the loader's `missing_ok`).
NUMBERS = Signature(
    (Feature("a", "double", True), Feature("b", "double", True), Feature("n", "long", True))
)
#: Some features take them, some do not, of every type.
MIXED = Signature(
    (
        Feature("x", "double", True),
        Feature("y", "double"),
        Feature("flag", "boolean", True),
        Feature("label", "string", True),
        Feature("n", "long", True),
    )
)
#: A model that takes none (LogisticRegression).
STRICT = Signature(tuple(Feature(name, "double") for name in ("w", "x", "y", "z")))


def refused(check: Any, rows: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        check(rows)
    return caught.value.message


def is_nan(value: Any) -> bool:
    return type(value) is float and math.isnan(value)


# -- JSON null -------------------------------------------------------------------------------


def test_null_in_instances_reaches_the_model_as_nan() -> None:
    rows = NUMBERS.check_instances([[1.5, None, 2], [None, None, None], [0.5, 2.5, 3]])
    assert rows[0][0] == 1.5 and is_nan(rows[0][1]) and rows[0][2] == 2
    assert all(is_nan(value) for value in rows[1])  # an integer feature's NaN is a float too
    assert rows[2] == [0.5, 2.5, 3]


def test_null_in_records_reaches_the_model_as_nan() -> None:
    rows = NUMBERS.check_records([{"n": None, "b": 1, "a": None}, {"a": 1, "b": 2, "n": 3}])
    assert is_nan(rows[0][0]) and rows[0][1] == 1 and is_nan(rows[0][2])
    assert rows[1] == [1, 2, 3]


def test_rows_without_a_missing_value_come_back_as_they_were() -> None:
    floats = Signature((Feature("a", "double", True), Feature("b", "float", True)))
    rows = [[1.5, 2.0], [0, 1]]
    assert floats.check_instances(rows) is rows  # the fast path: not even copied
    rows = [[1.5, 2.0, 3], [0, 1, 2], [None, 1, 2]]
    checked = NUMBERS.check_instances(rows)
    assert checked[0] is rows[0] and checked[1] is rows[1]  # the slow path copies only row 2
    assert rows[2] == [None, 1, 2]  # and never changes the client's own lists


def test_null_in_a_string_or_boolean_feature_that_takes_it_stays_none() -> None:
    rows = MIXED.check_instances([[None, 1.0, None, None, None]])
    assert is_nan(rows[0][0]) and rows[0][1:4] == [1.0, None, None] and is_nan(rows[0][4])
    assert MIXED.row_problem([None, 1.0, None, None, None]) is None


def test_null_where_the_model_takes_none_names_row_and_column() -> None:
    rows = [[1, 2, 3, 4]] * 3 + [[1, None, 3, 4]]
    message = refused(STRICT.check_instances, rows)
    assert message == f"row 3, column 'x': {MISSING_REFUSED}"
    assert MISSING_REFUSED.startswith("missing value, and this model does not take missing")


def test_null_in_a_feature_that_takes_none_is_refused_beside_ones_that_do() -> None:
    record = {"x": None, "y": None, "flag": True, "label": "a", "n": 1}
    assert refused(MIXED.check_records, [record]) == f"row 0, column 'y': {MISSING_REFUSED}"


def test_the_job_readers_row_check_takes_null_where_the_feature_does() -> None:
    assert NUMBERS.row_problem([None, None, None]) is None
    assert STRICT.row_problem([1, 2, None, 4]) == ("y", MISSING_REFUSED)


def test_a_nan_float_is_still_not_a_missing_value() -> None:
    message = refused(NUMBERS.check_instances, [[float("nan"), 1, 2]])
    assert message == "row 0, column 'a': must be a finite number"


# -- CSV empty cells -------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["", " ", "\t"])
def test_an_empty_cell_is_nan_and_the_sum_check_does_not_refuse_it(cell: str) -> None:
    # All numeric: the fast parse sums the row to find a NaN; a missing one must pass anyway.
    values = cells_parser(NUMBERS)(["1.5", cell, "2"])
    assert values is not None
    assert values[0] == 1.5 and is_nan(values[1]) and values[2] == 2 and type(values[2]) is int


def test_an_empty_cell_among_other_types() -> None:
    parse = cells_parser(MIXED)
    values = parse(["", "2.5", "", "", ""])
    assert values is not None
    assert is_nan(values[0]) and values[1:4] == [2.5, None, ""] and is_nan(values[4])
    assert parse(["1", "2", "true", "s", "3"]) == [1.0, 2.0, True, "s", 3]


def test_an_empty_cell_where_the_model_takes_none_is_refused_with_the_reason() -> None:
    assert cells_parser(STRICT)(["1", "", "3", "4"]) is None
    assert cells_problem(STRICT, ["1", "", "3", "4"]) == ("x", MISSING_REFUSED)
    assert cells_parser(MIXED)(["1", " ", "true", "s", "3"]) is None
    assert cells_problem(MIXED, ["1", " ", "true", "s", "3"]) == ("y", MISSING_REFUSED)


def test_a_row_with_a_missing_value_is_still_checked_cell_by_cell() -> None:
    parse = cells_parser(NUMBERS)
    for bad in (["", "nan", "1"], ["", "1e39", "1"], ["", "1", "2.5"], ["", "x", "1"]):
        assert parse(bad) is None
        assert cells_problem(NUMBERS, bad) is not None


def test_a_nan_cell_says_to_leave_it_empty_where_missing_values_are_taken() -> None:
    assert cells_parser(NUMBERS)(["NaN", "1", "2"]) is None
    assert cells_problem(NUMBERS, ["NaN", "1", "2"]) == (
        "a",
        "must be a finite number (leave the cell empty for a missing value)",
    )
    assert cell_problem("double", "nan") == "must be a finite number"


CELLS = ["1.5", "", " ", "x", "nan", "-inf", "1e39", "3.5", "true", "0"]
#: Spellings float() reads and JSON's grammar does not (issue 14), and JSON's own 1e5.
CELLS += ["1_0", "\u0661", ".5", "+1", " 1", "1.", "07", "1e5"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["double", "long", "boolean", "string"])
@pytest.mark.parametrize("missing_ok", [False, True])
def test_cells_parser_refuses_exactly_what_cell_problem_explains(
    kind: str, cell: str, missing_ok: bool
) -> None:
    """Both paths of the parser (fast, and the slow one of missing values) agree with the rule."""
    for signature in (
        Signature((Feature("v", kind, missing_ok),)),
        Signature((Feature("v", kind, missing_ok), Feature("w", "double", True))),
    ):
        cells = [cell] + ["1"] * (len(signature.features) - 1)
        parsed = cells_parser(signature)(cells)
        problem = cell_problem(kind, cell, missing_ok=missing_ok)
        assert (parsed is None) == (problem is not None)
        assert cells_problem(signature, cells) == (None if problem is None else ("v", problem))


# -- signature_from_mlflow -------------------------------------------------------------------


def test_a_column_mlflow_marks_not_required_takes_missing_values() -> None:
    schema = Schema(
        [
            ColSpec("double", "a", required=False),
            ColSpec("double", "b"),
            ColSpec("string", "s", required=False),
        ]
    )
    signature = signature_from_mlflow(schema, None)
    assert [f.missing_ok for f in signature.features] == [True, False, True]
    assert is_nan(signature.check_records([{"a": None, "b": 1, "s": None}])[0][0])


def test_missing_ok_marks_every_numeric_column_but_not_the_others() -> None:
    schema = Schema([ColSpec("double", "a"), ColSpec("long", "n"), ColSpec("string", "s")])
    signature = signature_from_mlflow(schema, None, missing_ok=True)
    assert [f.missing_ok for f in signature.features] == [True, True, False]


def test_by_default_nothing_takes_missing_values() -> None:
    schema = Schema([ColSpec("double", "a"), ColSpec("string", "s")])
    assert not any(f.missing_ok for f in signature_from_mlflow(schema, None).features)
    assert not any(f.missing_ok for f in signature_from_mlflow(None, 3).features)


def test_feature_names_replace_positional_names_without_a_column_signature() -> None:
    signature = signature_from_mlflow(None, 2, feature_names=["height", "width"], missing_ok=True)
    assert signature.features == (
        Feature("height", "double", True),
        Feature("width", "double", True),
    )
    tensor = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    names = np.array(["p", "q"], dtype=object)  # as feature_names_in_ holds them
    assert signature_from_mlflow(tensor, 2, feature_names=names).names == ("p", "q")
    assert signature_from_mlflow(None, None, feature_names=["p"]).names == ("p",)


def test_a_column_signature_wins_over_feature_names() -> None:
    schema = Schema([ColSpec("double", "a")])
    assert signature_from_mlflow(schema, 1, feature_names=["z"]).names == ("a",)


def test_feature_names_that_disagree_with_the_count_are_refused() -> None:
    with pytest.raises(InvalidInput):
        signature_from_mlflow(None, 3, feature_names=["a", "b"])
