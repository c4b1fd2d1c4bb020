"""The input signature of a model and the validation of client rows against it.

This module holds the value rules, for the sync API and the batch-job readers alike: which JSON
value fits a feature of each type (`value_problem`, `Signature.row_problem`); `registry.cells`
applies the same rules to a CSV cell, which is text. Numbers must be finite and within
`MAX_MAGNITUDE`, integers integral, booleans true or false (never a number). A missing value
(JSON null, an empty CSV cell) fits only a feature with `missing_ok`; in a numeric feature it
becomes float NaN. Rows without one take the fast paths; missing values take the slow ones.

Error messages name the row and the column but never echo a value a client sent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import InvalidInput

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
INTEGER_TYPES = frozenset({"long", "integer"})
FLOAT_TYPES = NUMERIC_TYPES - INTEGER_TYPES
KNOWN_TYPES = NUMERIC_TYPES | {"boolean", "string"}
#: Largest magnitude accepted for a number: float32's range, in which tree models compute.
MAX_MAGNITUDE = 3.0e38
#: The problem of a missing value (JSON null, an empty cell) in a feature that takes none.
MISSING_REFUSED = "missing value, and this model does not take missing values in this column"
NAN = float("nan")


@dataclass(frozen=True)
class Feature:
    """One input column: its name, MLflow type (double, long, boolean, string, ...) and whether
    it takes a missing value (JSON null, an empty CSV cell; NaN in a numeric feature)."""

    name: str
    type: str
    missing_ok: bool = False


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
    missing_names: frozenset[str] = field(init=False, repr=False, compare=False)
    """The features that take a missing value."""
    nan_at: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """The positions of the numeric features that take one: a missing value there is NaN."""

    def __post_init__(self) -> None:
        features = self.features
        object.__setattr__(self, "names", tuple(f.name for f in features))
        object.__setattr__(self, "types", tuple(f.type for f in features))
        object.__setattr__(
            self, "missing_names", frozenset(f.name for f in features if f.missing_ok)
        )
        nan_at = tuple(
            j for j, f in enumerate(features) if f.missing_ok and f.type in NUMERIC_TYPES
        )
        object.__setattr__(self, "nan_at", nan_at)

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
        """Validate a list of positional rows; returns them unchanged when every value fits,
        but for a missing value (None) in a numeric feature, which comes back as NaN."""
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
        return [self._with_nan(row) for row in rows] if self.nan_at else rows

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
            out.append(self._with_nan(values))
        return out

    def fill_missing(self, rows: list[list[Any]]) -> list[list[Any]]:
        """Rows read back from storage (where NaN is stored as null) with NaN again for each
        missing value of a numeric feature."""
        return [self._with_nan(row) for row in rows] if self.nan_at else rows

    def has_missing(self, rows: Iterable[list[Any]]) -> bool:
        """Whether a validated row holds a missing value (NaN) in a numeric feature."""
        nan_at = self.nan_at
        return bool(nan_at) and any(row[j] != row[j] for row in rows for j in nan_at)

    def _with_nan(self, row: list[Any]) -> list[Any]:
        """A valid row with NaN for each missing value of a numeric feature (a copy, if any)."""
        if all(row[j] is not None for j in self.nan_at):
            return row
        return [NAN if value is None and j in self.nan_at else value for j, value in enumerate(row)]

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
            if value is None:  # a missing value
                if name in self.missing_names:
                    continue
                return name, MISSING_REFUSED
            problem = value_problem(kind, value)
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
    """Why a JSON value does not fit a feature of type `kind`, or None when it does.

    None (JSON null) is a missing value, which a feature takes only with `missing_ok`: the
    signature's row checks decide that, before this is called.
    """
    if value is None:
        return MISSING_REFUSED
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


def _check_value(index: int, feature: Feature, value: Any) -> None:
    """Check one value as `check_instances` checks each (the job readers' tests compare to it)."""
    Signature((feature,))._check_row(index, (value,))


def quote_names(names: Sequence[str]) -> str:
    """Names for an error message, quoted, each cut short: names are bounded when echoed back."""
    return ", ".join(f"'{n[:64]}'" for n in names)


def signature_from_mlflow(
    inputs: Any,
    n_features: int | None,
    *,
    feature_names: Iterable[Any] | None = None,
    missing_ok: bool = False,
) -> Signature:
    """Build a Signature from MLflow's column-based input schema, else from the model's feature
    names (`feature_names_in_`, a booster's names), else from a feature count (f0, f1, ...).

    A column MLflow marks `required: false` takes missing values; with `missing_ok` (the model
    as a whole takes NaN, as the loader decides) so does every numeric feature.
    """
    if inputs is not None and not inputs.is_tensor_spec():
        features = []
        for position, col in enumerate(inputs.inputs):
            kind = str(getattr(col.type, "name", col.type))
            kind = kind if kind in KNOWN_TYPES else "double"
            optional = getattr(col, "required", True) is False
            takes = optional or (missing_ok and kind in NUMERIC_TYPES)
            features.append(Feature(col.name or f"f{position}", kind, takes))
        return Signature(tuple(features))
    if feature_names is not None:
        names = [str(name) for name in feature_names]
        if n_features is not None and len(names) != n_features:
            raise InvalidInput("the model's feature names and feature count disagree")
    elif n_features is None:
        raise InvalidInput("the model has neither a column signature nor a known feature count")
    else:
        names = [f"f{i}" for i in range(n_features)]
    return Signature(tuple(Feature(name, "double", missing_ok) for name in names))
