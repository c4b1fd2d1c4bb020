"""The `Runtime` interface: what every way of running a model offers its callers.

A loaded version is a native runtime (the library it was trained with) plus an optional verified
twin (a faster graph that answers the same). Callers read a runtime's policies instead of its
name: the name is for logs, headers and metric labels only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Prediction:
    """Labels (or values) for each row and, for classifiers, their probabilities."""

    labels: list[Any]
    probabilities: list[list[float]] | None


class Runtime(Protocol):
    """One way of running a model version on validated rows."""

    @property
    def name(self) -> str:
        """A short name for logs, headers and metric labels; never a branch."""
        ...

    @property
    def inline_rows(self) -> int:
        """Calls of at most this many rows are cheap enough for the event loop (0: never)."""
        ...

    @property
    def worth_caching(self) -> bool:
        """Whether answers are worth a cache round trip (false when predicting is cheaper)."""
        ...

    @property
    def classes(self) -> list[Any] | None:
        """The model's classes, or None for a regressor."""
        ...

    @property
    def probability_decimals(self) -> int | None:
        """Decimals its probabilities are rounded to (None: as computed in float64)."""
        ...

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows; CPU-bound. Raises ValueError on rows it cannot score."""
        ...


class NativeRuntime(Runtime, Protocol):
    """The runtime of the library a version was trained with; a twin is converted from it."""

    @property
    def estimator(self) -> Any:
        """The library's own model object (a fitted estimator, a booster, ...)."""
        ...

    @property
    def model_type(self) -> str:
        """The estimator's type name, as `/model-info` tells it."""
        ...

    @property
    def has_probabilities(self) -> bool:
        """Whether it answers class probabilities beside the labels."""
        ...
