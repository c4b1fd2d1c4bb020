"""The CSV cell rules: how a cell of an upload, which is text, is parsed into a feature's value.

The same rules as `registry.signature`'s JSON value rules, for text. A number cell is spelt as
JSON spells a number (RFC 8259, `JSON_NUMBER`: ASCII digits, an optional `-`, no leading zero, a
digit on each side of the point, an optional exponent) and nothing else: no spaces around it, no
`+`, no `_` between digits, no `.5` or `1.`, no NaN or Infinity, all of which `float()` takes.
Booleans are `BOOLEAN_CELLS` (stripped, any case); strings are kept as they are. An empty (or
blank) number or boolean is a missing value, which fits only a feature with `missing_ok` (NaN for
a number). `cells_parser` builds the per-row parser a CSV upload runs; `cells_problem` says why a
row's cell does not parse. Error messages never echo a cell.
"""

from __future__ import annotations

import math
import re
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
#: RFC 8259's number without its sign: `0` or a digit 1-9 and more digits, then an optional
#: fraction and exponent, in ASCII digits. Possessive (`*+`, `?+`, `++`): the grammar never needs
#: to backtrack, so the regex is told not to, which is quicker (the fast path matches every row).
UNSIGNED_NUMBER = r"(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
#: What a number cell must be, exactly (`fullmatch`): RFC 8259's number, `-?` and the rest.
JSON_NUMBER = re.compile("-?+" + UNSIGNED_NUMBER)
#: The problem of a cell that `float()` reads but that is not a number as JSON spells it.
NOT_JSON_NUMBER = (
    "expected a number as JSON writes it, such as 12, -0.5 or 1e-3 "
    "(ASCII digits; no spaces, '+', '_' or leading zeros)"
)


def cells_parser(signature: Signature) -> Callable[[Sequence[str]], list[Any] | None]:
    """A function from the CSV cells of a row (one per feature) to its values.

    It returns None when a cell does not parse; `cells_problem` then says which and why.
    Numbers must be `JSON_NUMBER`s, read with `float()` (integral columns come out as `int`),
    booleans are `BOOLEAN_CELLS`, strings are kept as they are. Everything per column is decided
    here, once, so that the function does only the per-row work. An empty cell fails the fast
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
    # The numeric cells of a mixed row, picked in one C call. itemgetter of one index gives
    # the cell itself, not a tuple: that one is picked twice, which the checks below see alike.
    numbers_of: Callable[[Sequence[Any]], Sequence[Any]] | None = None
    picked = len(kinds)  # how many numbers the check of a row sees
    if not all_numeric and len(numeric_at) > 1:
        numbers_of, picked = itemgetter(*numeric_at), len(numeric_at)
    elif not all_numeric and numeric_at:
        numbers_of, picked = itemgetter(numeric_at[0], numeric_at[0]), 2
    # A row's numeric cells are matched against JSON_NUMBER in one regex call, joined by
    # commas: a cell with a comma in it (quoted in the CSV) makes a number too many, and fails.
    number = JSON_NUMBER.pattern
    are_numbers = re.compile(f"{number}(?:,{number}){{{max(picked, 1) - 1}}}").fullmatch
    low, high = -MAX_MAGNITUDE, MAX_MAGNITUDE
    takes_missing = bool(signature.missing_names)
    features = signature.features

    def parse_missing(cells: Sequence[str]) -> list[Any] | None:
        # The slow path, of a row that may hold a missing value: checked cell by cell.
        if cells_problem(signature, cells) is not None:
            return None
        return [_cell_value(f, cell) for f, cell in zip(features, cells, strict=True)]

    def parse(cells: Sequence[str]) -> list[Any] | None:
        numbers: Sequence[Any]
        if all_numeric:
            if are_numbers(",".join(cells)) is None:  # not a number; empty
                return parse_missing(cells) if takes_missing else None
            values = list(map(float, cells))
            numbers = values
        else:
            if numbers_of is not None and are_numbers(",".join(numbers_of(cells))) is None:
                return parse_missing(cells) if takes_missing else None
            try:
                values = [convert(cell) for convert, cell in zip(converters, cells, strict=True)]
            except KeyError:  # not a boolean spelling; empty
                return parse_missing(cells) if takes_missing else None
            if numbers_of is None:  # no numeric column: nothing more to check
                return values
            numbers = numbers_of(values)
        # One C call each instead of a loop: anything past the range shows in max or min
        # (float() reads a JSON number too large, 1e400, as infinity).
        if max(numbers) > high or min(numbers) < low:
            return None
        if integer_at:  # spares the loop for the common all-float signature
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
        if JSON_NUMBER.fullmatch(cell) is None:
            return _not_a_number(cell, missing_ok)
        value = float(cell)
        if abs(value) > MAX_MAGNITUDE:  # float() reads 1e400 as infinity: too large
            return "number out of range"
        if kind in INTEGER_TYPES and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean" and cell.strip().lower() not in BOOLEAN_CELLS:
        return "expected true or false"
    return None


def _not_a_number(cell: str, missing_ok: bool) -> str:
    """The problem of a cell that is not a `JSON_NUMBER`, said as plainly as its spelling lets:
    a NaN or an infinity is not finite; other spellings `float()` takes (`1_0`, `.5`, `+1`,
    ` 1`, a non-ASCII digit) are not JSON's."""
    try:
        value = float(cell)
    except ValueError:
        return "expected a number"
    if math.isnan(value):
        if missing_ok:
            return "must be a finite number (leave the cell empty for a missing value)"
        return "must be a finite number"
    if math.isinf(value) and "inf" in cell.lower():
        return "must be a finite number"
    return NOT_JSON_NUMBER


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
