"""The input signature of a model and the validation of client rows against it.

This module holds the value rules, for the sync API and the batch-job readers alike: which JSON
value fits a feature of each type (`value_problem`, `Signature.row_problem`) and how a CSV cell,
which is text, is parsed into one (`cell_problem`, `Signature.cells_parser`). Numbers must be
finite and within `MAX_MAGNITUDE`, integers integral, booleans true or false (never a number).

Error messages name the row and the column but never echo a value a client sent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from kernel.errors import InvalidInput

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
INTEGER_TYPES = frozenset({"long", "integer"})
FLOAT_TYPES = NUMERIC_TYPES - INTEGER_TYPES
KNOWN_TYPES = NUMERIC_TYPES | {"boolean", "string"}
#: Largest magnitude accepted for a number: float32's range, in which tree models compute.
MAX_MAGNITUDE = 3.0e38
#: How a CSV cell spells a boolean, lower-cased: a cell is stripped and matched in any case.
BOOLEAN_CELLS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class Feature:
    """One input column: its name and MLflow type (double, long, boolean, string, ...)."""

    name: str
    type: str


@dataclass(frozen=True)
class Signature:
    """The ordered input columns a model expects."""

    features: tuple[Feature, ...]
    # Derived once, as plain attributes rather than properties: the row checks read them for
    # every row of a batch job, and a plain attribute is the cheapest lookup there is.
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The feature names, in order."""
    types: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The feature types, in order."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(f.name for f in self.features))
        object.__setattr__(self, "types", tuple(f.type for f in self.features))

    @property
    def all_numeric(self) -> bool:
        """Every column a number (double, float, long or integer)."""
        return all(f.type in NUMERIC_TYPES for f in self.features)

    @functools.cached_property
    def all_float(self) -> bool:
        """Every column a double or a float (ints are accepted there, as numbers)."""
        return all(f.type in FLOAT_TYPES for f in self.features)

    def as_dict(self) -> list[dict[str, str]]:
        """The columns as JSON: a list of {"name", "type"} objects, in order."""
        return [{"name": f.name, "type": f.type} for f in self.features]

    def check_instances(self, instances: Any) -> list[list[Any]]:
        """Validate a list of positional rows; returns them unchanged when every value fits."""
        rows = _require_rows(instances, "instances")
        width = len(self.features)
        # The common case, checked in one pass: lists of ints and floats within range (a NaN
        # fails the comparison). Anything else gets the exact message below.
        if self.all_float and all(
            type(row) is list
            and len(row) == width
            and all(
                (type(v) is float or type(v) is int) and -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE
                for v in row
            )
            for row in rows
        ):
            return rows
        for index, row in enumerate(rows):
            if not isinstance(row, list):
                raise InvalidInput(f"row {index}: expected a list of {width} values")
            if len(row) != width:
                raise InvalidInput(f"row {index}: expected {width} values, got {len(row)}")
            self._check_row(index, row)
        return rows

    def check_records(self, records: Any) -> list[list[Any]]:
        """Validate a list of named rows and return them as positional rows in signature order."""
        rows = _require_rows(records, "records")
        expected = set(self.names)
        out: list[list[Any]] = []
        for index, record in enumerate(rows):
            if not isinstance(record, Mapping):
                raise InvalidInput(f"row {index}: expected an object of feature names to values")
            missing = [n for n in self.names if n not in record]
            if missing:
                raise InvalidInput(f"row {index}: missing feature(s) {quote_names(missing)}")
            unknown = [str(k) for k in record if k not in expected]
            if unknown:
                # Names are bounded: only the first few, each cut short, are echoed back.
                raise InvalidInput(f"row {index}: unknown feature(s) {quote_names(unknown[:3])}")
            values = [record[n] for n in self.names]
            self._check_row(index, values)
            out.append(values)
        return out

    def _check_row(self, index: int, values: Sequence[Any]) -> None:
        """The sync API's InvalidInput for the first value of row `index` that does not fit."""
        found = self.row_problem(values)
        if found is not None:
            name, problem = found
            raise InvalidInput(f"row {index}, column '{name}': {problem}")

    def row_problem(self, values: Sequence[Any]) -> tuple[str, str] | None:
        """The first JSON value of a row (one per feature) that does not fit, as (name, why)."""
        low, high = -MAX_MAGNITUDE, MAX_MAGNITUDE
        for name, kind, value in zip(self.names, self.types, values, strict=True):
            # The common case (a finite, in-range float or int for a numeric column) is decided
            # here without a call; anything else goes through value_problem.
            cls = type(value)
            if (
                (cls is float or cls is int)
                and kind in NUMERIC_TYPES
                and low <= value <= high
                and (cls is int or kind not in INTEGER_TYPES or value.is_integer())
            ):
                continue
            problem = value_problem(kind, value)
            if problem is not None:
                return name, problem
        return None

    def cells_parser(self) -> Callable[[Sequence[str]], list[Any] | None]:
        """A function from the CSV cells of a row (one per feature) to its values.

        It returns None when a cell does not parse; `cells_problem` then says which and why.
        Numbers are read with `float()` (integral columns come out as `int`), booleans are
        `BOOLEAN_CELLS`, strings are kept as they are. Everything per column is decided here,
        once, so that the function does only the per-row work.
        """
        kinds = self.types
        all_numeric = self.all_numeric
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

        def parse(cells: Sequence[str]) -> list[Any] | None:
            try:
                if all_numeric:
                    values = list(map(float, cells))
                else:
                    values = [
                        convert(cell) for convert, cell in zip(converters, cells, strict=True)
                    ]
            except (ValueError, KeyError):  # not a number; not a boolean spelling
                return None
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

    def cells_problem(self, cells: Sequence[str]) -> tuple[str, str] | None:
        """The first CSV cell of a row (one per feature) that does not parse, as (name, why)."""
        for name, kind, cell in zip(self.names, self.types, cells, strict=True):
            problem = cell_problem(kind, cell)
            if problem is not None:
                return name, problem
        return None


def _require_rows(rows: Any, field: str) -> list[Any]:
    if not isinstance(rows, list):
        raise InvalidInput(f"'{field}' must be a list of rows")
    if not rows:
        raise InvalidInput(f"'{field}' has no rows")
    return rows


def value_problem(kind: str, value: Any) -> str | None:
    """Why a JSON value does not fit a feature of type `kind`, or None when it does."""
    if kind in NUMERIC_TYPES:
        # bool is an int in Python, but true/false is not a measurement.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "expected a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if abs(value) > MAX_MAGNITUDE:
            return "number out of range"
        if kind in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "expected true or false"
    elif kind == "string" and not isinstance(value, str):
        return "expected a string"
    return None


def cell_problem(kind: str, cell: str) -> str | None:
    """Why a CSV cell does not parse into a value of a feature of type `kind`, or None."""
    if kind in NUMERIC_TYPES:
        if not cell.strip():
            return "expected a number, got an empty cell"
        try:
            value = float(cell)
        except ValueError:
            return "expected a number"
        if math.isnan(value):
            return "must be a finite number"
        if math.isinf(value):
            # float() reads 1e400 as inf: a finite number, too large.
            return "must be a finite number" if "inf" in cell.lower() else "number out of range"
        if abs(value) > MAX_MAGNITUDE:
            return "number out of range"
        if kind in INTEGER_TYPES and not value.is_integer():
            return "expected an integer"
    elif kind == "boolean":
        if not cell.strip():
            return "expected true or false, got an empty cell"
        if cell.strip().lower() not in BOOLEAN_CELLS:
            return "expected true or false"
    return None


def _parse_boolean(cell: str) -> bool:
    return BOOLEAN_CELLS[cell.strip().lower()]


def _keep(cell: str) -> str:
    # A string feature takes the cell as it is; a function call is cheaper here than str().
    return cell


def _check_value(index: int, feature: Feature, value: Any) -> None:
    """Check one value as `check_instances` checks each (the job readers' tests compare to it)."""
    Signature((feature,))._check_row(index, (value,))


def quote_names(names: Sequence[str]) -> str:
    """Names for an error message, quoted, each cut short: names are bounded when echoed back."""
    return ", ".join(f"'{n[:64]}'" for n in names)


def signature_from_mlflow(inputs: Any, n_features: int | None) -> Signature:
    """Build a Signature from MLflow's column-based input schema, else from a feature count."""
    if inputs is not None and not inputs.is_tensor_spec():
        features = []
        for position, col in enumerate(inputs.inputs):
            kind = str(getattr(col.type, "name", col.type))
            features.append(
                Feature(
                    name=col.name or f"f{position}", type=kind if kind in KNOWN_TYPES else "double"
                )
            )
        return Signature(tuple(features))
    if n_features is None:
        raise InvalidInput("the model has neither a column signature nor a known feature count")
    return Signature(tuple(Feature(f"f{i}", "double") for i in range(n_features)))
