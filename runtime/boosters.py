"""What the boosting libraries' runtimes share: the kind of model an objective makes.

A Booster (XGBoost's or LightGBM's own object, as `xgboost.train` and `lightgbm.train` give)
knows its objective but not the scikit-learn words for it: this module turns the objective
into classes (or none, for a regressor) and answers from the booster's raw output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.base import (
    CLASS_1_SCORE,
    LABELS,
    SCORE_ROWS,
    Prediction,
    classifier_answer,
    values_answer,
)

#: The objectives whose booster answers the probability of class 1 (a 1-D output).
BINARY_OBJECTIVES = ("binary:logistic", "binary", "cross_entropy", "xentropy")


class BoosterRuntime:
    """What the boosting libraries' runtimes share: called in the callers' threads, answers
    worth caching, NaN taken as a missing value, probabilities exactly when there are classes.
    A subclass sets `name`, `flavor`, `estimator`, `classes` and, for a Booster, `booster`
    and `objective`."""

    name = ""
    flavor = ""
    #: The library's name in errors.
    library = ""
    inline_rows = 0
    worth_caching = True
    takes_missing = True
    estimator: Any
    classes: list[Any] | None
    objective = ""

    @property
    def model_type(self) -> str:
        if getattr(self, "booster", None) is self.estimator:
            return f"Booster({self.objective})"
        return type(self.estimator).__name__

    @property
    def has_probabilities(self) -> bool:
        return self.classes is not None

    @property
    def mlflow_output(self) -> str:
        # MLflow's xgboost and lightgbm flavors answer a bare Booster's `predict` as it is
        # (probabilities), and the scikit-learn API's labels.
        if self.classes is None or getattr(self, "booster", None) is not self.estimator:
            return LABELS
        return CLASS_1_SCORE if self.objective in BINARY_OBJECTIVES else SCORE_ROWS

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        if not all_numeric:
            raise ValueError(f"{self.library} models take numeric columns only here")


def objective_classes(objective: str, num_class: int) -> list[Any] | None:
    """The classes a booster's objective predicts (0..k-1), or None when it predicts values.

    Only objectives that give probabilities count as classifiers; `multi:softmax` (labels
    without probabilities) and raw scores are answered as values."""
    if objective in ("multi:softprob", "multiclass", "softmax", "multiclassova", "multiclass_ova"):
        return list(range(max(num_class, 2)))
    if objective in BINARY_OBJECTIVES:
        return [0, 1]
    return None


def booster_answer(classes: list[Any] | None, raw: Any, scores: bool = False) -> Prediction:
    """Answer from a booster's output: probabilities (binary: of class 1) or values; with
    `scores`, the output itself too, as MLflow's flavor answers it."""
    out = np.asarray(raw, dtype=np.float64)
    if classes is None:
        return values_answer(out)
    kept = out.tolist() if scores else None
    if out.ndim == 1:  # binary: the probability of class 1
        out = np.column_stack([1.0 - out, out])
    answer = classifier_answer(classes, out)
    return answer if kept is None else Prediction(answer.labels, answer.probabilities, kept)
