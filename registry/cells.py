"""The CSV cell rules: how a cell of an upload, which is text, is parsed into a feature's value.

The same rules as `registry.signature`'s JSON value rules, for text: numbers are read with
`float()`, booleans are `BOOLEAN_CELLS`, strings are kept as they are, and an empty number or
boolean is a missing value, which fits only a feature with `missing_ok` (NaN for a number).
`cells_parser` builds the per-row parser a CSV upload runs; `cells_problem` says why a row's
cell does not parse. Error messages never echo a cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from registry.signature import (
    INTEGER_TYPES,
    MAX_MAGNITUDE,
    MISSING_REFUSED,
    NAN,
    NUMERIC_TYPES,
    Feature,
    Signature,
)

#: How a CSV cell spells a boolean, lower-cased: a cell is stripped and matched in any case.
BOOLEAN_CELLS = {"true": True, "false": False, "1": True, "0": False}


def cells_parser(signature: Signature) -> Callable[[Sequence[str]], list[Any] | None]:
    """A function from the CSV cells of a row (one per feature) to its values.

    It returns None when a cell does not parse; `cells_problem` then says which and why.
    Numbers are read with `float()` (integral columns come out as `int`), booleans are
    `BOOLEAN_CELLS`, strings are kept as they are. Everything per column is decided here,
    once, so that the function does only the per-row work. An empty cell fails the fast
    parse; in a row of a model that takes missing values, the slow path reads it again.
    """
    kinds = signature.types
    all_numeric = signature.all_numeric
    numeric_at = [j for j, kind in enumerate(kinds) if kind in NUMERIC_TYPES]
    integer_at = [j for j, kind in enumerate(kinds) if kind in INTEGER_TYPES]
    converters: list[Callable[[str], Any]] = [
        float if kind in NUMERIC_TYPES else _parse_boolean if kind == "boolean" else _keep
        for kind in kinds
    ]
    # The numeric values of a mixed row, picked in one C call. itemgetter of one index gives
    # the value itself, not a tuple: that one is picked twice, which the checks below see
    # alike (the same NaN, max and min).
    numbers_of: Callable[[list[Any]], Sequence[Any]] | None = None
    if len(numeric_at) > 1:
        numbers_of = itemgetter(*numeric_at)
    elif numeric_at:
        numbers_of = itemgetter(numeric_at[0], numeric_at[0])
    low, high = -MAX_MAGNITUDE, MAX_MAGNITUDE
    takes_missing = bool(signature.missing_names)
    features = signature.features

    def parse_missing(cells: Sequence[str]) -> list[Any] | None:
        # The slow path, of a row that may hold a missing value: checked cell by cell, so
        # that its NaN is never taken for a NaN cell (which the fast path's sum refuses).
        if cells_problem(signature, cells) is not None:
            return None
        return [_cell_value(f, cell) for f, cell in zip(features, cells, strict=True)]

    def parse(cells: Sequence[str]) -> list[Any] | None:
        try:
            if all_numeric:
                values = list(map(float, cells))
            else:
                values = [convert(cell) for convert, cell in zip(converters, cells, strict=True)]
        except (ValueError, KeyError):  # not a number; not a boolean spelling; empty
            return parse_missing(cells) if takes_missing else None
        numbers: Sequence[Any]
        if all_numeric:
            numbers = values
        elif numbers_of is not None:
            numbers = numbers_of(values)
        else:  # no numeric column: nothing more to check
            return values
        # One C call each instead of a loop: NaN makes the sum NaN; +-inf and anything past
        # the range show in max or min (the sum of floats within 3e38 stays finite).
        total = sum(numbers)
        if total != total or max(numbers) > high or min(numbers) < low:
            return None
        if integer_at:  # spares the iterator for the common all-float signature
            for j in integer_at:
                value = values[j]
                if not value.is_integer():
                    return None
                values[j] = int(value)
        return values

    return parse


def cells_problem(signature: Signature, cells: Sequence[str]) -> tuple[str, str] | None:
    """The first CSV cell of a row (one per feature) that does not parse, as (name, why)."""
    for feature, cell in zip(signature.features, cells, strict=True):
        problem = cell_problem(feature.type, cell, missing_ok=feature.missing_ok)
        if problem is not None:
            return feature.name, problem
    return None


def cell_problem(kind: str, cell: str, *, missing_ok: bool = False) -> str | None:
    """Why a CSV cell does not parse into a value of a feature of type `kind`, or None.

    An empty (or blank) number or boolean is a missing value, which fits only with `missing_ok`;
    a string feature takes an empty cell as the empty string."""
    if (kind in NUMERIC_TYPES or kind == "boolean") and not cell.strip():
        return None if missing_ok else MISSING_REFUSED
    if kind in NUMERIC_TYPES:
        try:
            value = float(cell)
        except ValueError:
            return "expected a number"
        if math.isnan(value):
            if missing_ok:
                return "must be a finite number (leave the cell empty for a missing value)"
            return "must be a finite number"
        if math.isinf(value):
            # float() reads 1e400 as inf: a finite number, too large.
            return "must be a finite number" if "inf" in cell.lower() else "number out of range"
        if abs(value) > MAX_MAGNITUDE:
            return "number out of range"
        if kind in INTEGER_TYPES and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean" and cell.strip().lower() not in BOOLEAN_CELLS:
        return "expected true or false"
    return None


def _cell_value(feature: Feature, cell: str) -> Any:
    """The value of a CSV cell that `cell_problem` accepts: the slow path of `cells_parser`."""
    kind = feature.type
    if kind not in NUMERIC_TYPES and kind != "boolean":
        return cell
    if not cell.strip():  # a missing value, which this feature takes
        return NAN if kind in NUMERIC_TYPES else None
    if kind == "boolean":
        return _parse_boolean(cell)
    value = float(cell)
    return int(value) if kind in INTEGER_TYPES else value


def _parse_boolean(cell: str) -> bool:
    return BOOLEAN_CELLS[cell.strip().lower()]


def _keep(cell: str) -> str:
    # A string feature takes the cell as it is; a function call is cheaper here than str().
    return cell
