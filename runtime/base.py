"""The `Runtime` interface: what every way of running a model offers its callers.

A loaded version is a native runtime (the library it was trained with) plus an optional verified
twin (a faster graph that answers the same). Callers read a runtime's policies instead of its
name: the name is for logs, headers and metric labels only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: Every runtime's probabilities are rounded to this many decimals, so that a promotion from
#: one runtime to another never changes what clients parse: float32 tree sums (ONNX, LightGBM)
#: are 1e-6 off float64 ones, and a twin is verified within 1e-5 before rounding.
PROBABILITY_DECIMALS = 5

#: What MLflow's flavors answer per row (NativeRuntime.mlflow_output).
LABELS, LABEL_COLUMN, CLASS_1_SCORE, SCORE_ROWS = (
    "labels",
    "label column",
    "class 1 score",
    "score rows",
)
#: The outputs that are the library's scores, which predictions carry as `scores`.
SCORES = frozenset({CLASS_1_SCORE, SCORE_ROWS})


@dataclass(frozen=True)
class Prediction:
    """Labels (or values) for each row and, for classifiers, their probabilities."""

    labels: list[Any]
    probabilities: list[list[float]] | None
    #: Per row, the library's own output where MLflow's flavor answers it instead of the
    #: labels (a bare Booster's: NativeRuntime.mlflow_output), unrounded; else None.
    scores: list[Any] | None = None


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

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows; CPU-bound. Raises ValueError on rows it cannot score, and
        ModelRaised when the model's own code (a pyfunc's) raised."""
        ...


class ModelRaised(Exception):
    """The model's own code (a pyfunc's) raised on the rows it was given, or answered them with
    something that is not one value per row.

    It is no ModelgateError: it has no code, so a request it reaches is answered as a logged
    500. The coalescer calls each request of a failed call alone, and blames the rows of a
    request only when they make the model fail again while it answers others (then
    InvalidInput). `what` says what happened with the exception's type name, never its
    message (which may hold a value); `answered` says whether the runtime had answered any
    call before this one.
    """

    def __init__(self, what: str, answered: bool) -> None:
        super().__init__(f"the model {what}")
        self.what = what
        self.answered = answered


def classifier_answer(classes: list[Any], proba: Any) -> Prediction:
    """Labels as the argmax of the probabilities over `classes` (ties: the first class), with
    the probabilities rounded to PROBABILITY_DECIMALS."""
    matrix = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(classes, dtype=object).take(matrix.argmax(axis=1)).tolist()
    return Prediction(labels, np.round(matrix, PROBABILITY_DECIMALS).tolist())


def values_answer(values: Any) -> Prediction:
    """A regressor's (or score model's) answer: one float per row, no probabilities."""
    return Prediction(np.asarray(values, dtype=np.float64).reshape(-1).tolist(), None)


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

    @property
    def mlflow_output(self) -> str:
        """What MLflow's flavor answers per row (`mlflow models serve`): LABELS (the labels or
        values), LABEL_COLUMN (each label in a list of one: CatBoost's multiclass `predict`),
        CLASS_1_SCORE (a bare Booster with a binary objective: the probability of class 1) or
        SCORE_ROWS (a bare multiclass Booster: its probabilities). For the last two the native
        runtime's predictions carry those `scores`, unrounded."""
        ...

    @property
    def flavor(self) -> str:
        """The MLflow flavor it was loaded from (sklearn, xgboost, ..., python_function)."""
        ...

    @property
    def takes_missing(self) -> bool:
        """Whether the model itself takes NaN for a missing value (the flavor or its tags)."""
        ...

    @property
    def feature_names(self) -> list[str] | None:
        """The names the model was fitted on, when it knows them."""
        ...

    @property
    def n_features(self) -> int | None:
        """How many features the model takes, when it knows."""
        ...

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        """Fix the input columns, once the loader has the signature; raises ValueError when the
        model cannot take such columns."""
        ...
