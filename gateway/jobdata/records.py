"""Rows given as JSON values, records (objects) or instances (lists), checked against a signature.

The NDJSON and JSON readers share this; the values are checked by `Signature.row_problem`, the
sync API's rules, and the lengths of text values by `UploadLimits` (`check_sizes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.jobdata.chunks import (
    JSON_SCALARS,
    UploadLimits,
    cell_too_long,
    id_too_long,
    longer_than,
    quoted,
    unknown_columns,
    where,
)
from kernel.errors import InvalidInput
from registry.signature import Signature


def is_out_of_range(error: ValueError) -> bool:
    """Whether orjson refused a document for a number too large (it reads 1e400 as infinity).

    orjson refuses NaN and Infinity too, as invalid JSON: those are not numbers in JSON.
    """
    return "infinity" in str(error)


class RowChecker:
    """Checks rows given as JSON values (records or positional rows) against a signature."""

    def __init__(
        self, signature: Signature, id_columns: list[str], limits: UploadLimits | None = None
    ) -> None:
        # Bound once: the value check is one call per row, made from record() and instance().
        self.row_problem = signature.row_problem
        self.names = signature.names
        self.id_columns = id_columns
        self.expected_keys = len(self.names) + len(id_columns)
        self.known = set(self.names) | set(id_columns)
        self.limits = limits or UploadLimits()
        #: The features whose values are text, the only ones a value of which can be long.
        self.text_features = [
            (at, name)
            for at, (name, kind) in enumerate(zip(self.names, signature.types, strict=True))
            if kind == "string"
        ]

    def record(
        self, record: Any, index: int, line: int | None
    ) -> tuple[list[Any], list[Any] | None]:
        """A record's positional values and its ids, validated."""
        if type(record) is not dict:
            raise InvalidInput(
                f"{where(index, line)}: expected an object of feature names to values"
            )
        # The lists are built inline, not by a helper: a call per row costs more than the rest.
        try:
            values = [record[name] for name in self.names]
        except KeyError:
            raise _missing(record, self.names, "feature(s)", index, line) from None
        ids: list[Any] | None = None
        if self.id_columns:
            try:
                ids = [record[name] for name in self.id_columns]
            except KeyError:
                raise _missing(record, self.id_columns, "id column(s)", index, line) from None
            for name, value in zip(self.id_columns, ids, strict=True):
                if not isinstance(value, JSON_SCALARS):
                    raise InvalidInput(
                        f"{where(index, line)}, id column '{name[:64]}': "
                        "expected a string, number, boolean or null"
                    )
        if len(record) != self.expected_keys:
            unknown = [str(key) for key in record if key not in self.known]
            raise unknown_columns(where(index, line), unknown)
        found = self.row_problem(values)
        if found is not None:
            raise _misfit(found, index, line)
        return values, ids

    def check_sizes(
        self, values: list[Any], ids: list[Any] | None, index: int, line: int | None
    ) -> None:
        """Refuse a valid row's first text value past its limit: a feature's, then an id's."""
        cell_bytes, id_bytes = self.limits.cell_bytes, self.limits.id_bytes
        for at, name in self.text_features:
            value = values[at]
            if type(value) is str and longer_than(value, cell_bytes):
                raise cell_too_long(f"{where(index, line)}, column '{name[:64]}'", cell_bytes)
        for name, value in zip(self.id_columns, ids or (), strict=False):
            if type(value) is str and longer_than(value, id_bytes):
                raise id_too_long(f"{where(index, line)}, id column '{name[:64]}'", id_bytes)

    def instance(self, row: Any, index: int) -> list[Any]:
        """A positional row of an instances body, validated and returned unchanged."""
        width = len(self.names)
        if type(row) is not list:
            raise InvalidInput(f"row {index}: expected a list of {width} values")
        if len(row) != width:
            raise InvalidInput(f"row {index}: expected {width} values, got {len(row)}")
        found = self.row_problem(row)
        if found is not None:
            raise _misfit(found, index, None)
        return row


def _missing(
    record: dict[str, Any], names: Sequence[str], what: str, index: int, line: int | None
) -> InvalidInput:
    """The error of a record that lacks some of `names`, which it names."""
    missing = [name for name in names if name not in record]
    return InvalidInput(f"{where(index, line)}: missing {what} {quoted(missing)}")


def _misfit(found: tuple[str, str], index: int, line: int | None) -> InvalidInput:
    """The error of a value that does not fit: `found` is `Signature.row_problem`'s answer."""
    name, problem = found
    return InvalidInput(f"{where(index, line)}, column '{name[:64]}': {problem}")
