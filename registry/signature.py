"""The input signature of a model and the validation of client rows against it.

Error messages name the row and the column but never echo a value a client sent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kernel.errors import InvalidInput

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
INTEGER_TYPES = frozenset({"long", "integer"})
FLOAT_TYPES = NUMERIC_TYPES - INTEGER_TYPES
KNOWN_TYPES = NUMERIC_TYPES | {"boolean", "string"}
#: Largest magnitude accepted for a number: float32's range, in which tree models compute.
MAX_MAGNITUDE = 3.0e38


@dataclass(frozen=True)
class Feature:
    """One input column: its name and MLflow type (double, long, boolean, string, ...)."""

    name: str
    type: str


@dataclass(frozen=True)
class Signature:
    """The ordered input columns a model expects."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def all_numeric(self) -> bool:
        return all(f.type in NUMERIC_TYPES for f in self.features)

    @functools.cached_property
    def all_float(self) -> bool:
        """Every column a double or a float (ints are accepted there, as numbers)."""
        return all(f.type in FLOAT_TYPES for f in self.features)

    def as_dict(self) -> list[dict[str, str]]:
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
            for feature, value in zip(self.features, row, strict=True):
                _check_value(index, feature, value)
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
                raise InvalidInput(f"row {index}: missing feature(s) {_quoted(missing)}")
            unknown = [str(k) for k in record if k not in expected]
            if unknown:
                # Names are bounded: only the first few, each cut short, are echoed back.
                raise InvalidInput(f"row {index}: unknown feature(s) {_quoted(unknown[:3])}")
            values = [record[n] for n in self.names]
            for feature, value in zip(self.features, values, strict=True):
                _check_value(index, feature, value)
            out.append(values)
        return out


def _require_rows(rows: Any, field: str) -> list[Any]:
    if not isinstance(rows, list):
        raise InvalidInput(f"'{field}' must be a list of rows")
    if not rows:
        raise InvalidInput(f"'{field}' has no rows")
    return rows


def _check_value(index: int, feature: Feature, value: Any) -> None:
    kind = feature.type
    if kind in NUMERIC_TYPES:
        # bool is an int in Python, but true/false is not a measurement.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"row {index}, column '{feature.name}': expected a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"row {index}, column '{feature.name}': must be a finite number")
        if abs(value) > MAX_MAGNITUDE:
            raise InvalidInput(f"row {index}, column '{feature.name}': number out of range")
        if kind in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
            raise InvalidInput(f"row {index}, column '{feature.name}': expected an integer")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(f"row {index}, column '{feature.name}': expected true or false")
    elif kind == "string" and not isinstance(value, str):
        raise InvalidInput(f"row {index}, column '{feature.name}': expected a string")


def _quoted(names: Sequence[str]) -> str:
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
