"""LightGBM's runtime, for a `Booster` and for its scikit-learn API (`LGBMClassifier`, ...).

Both answer through the booster's `predict` on a float64 array in signature order: LightGBM
renames features (spaces become underscores), so names never have to match, and a one-row call
costs tens of microseconds. LightGBM takes NaN as a missing value, always. An `LGBMClassifier`
keeps its own classes (any labels, in the booster's order); a bare booster's come from its
objective (`multiclass`, `binary`: 0..k-1); other objectives answer values.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from runtime.base import Prediction
from runtime.boosters import booster_answer, objective_classes


class LightGBMRuntime:
    name = "lightgbm"
    flavor = "lightgbm"
    inline_rows = 0
    worth_caching = True
    takes_missing = True

    def __init__(self, model: Any) -> None:
        self.estimator = model
        self.booster = getattr(model, "booster_", model)
        # A booster read from its text file carries its parameters, the objective among them.
        self.objective = str(self.booster.params.get("objective", "")).split(" ")[0]
        classes = getattr(model, "classes_", None) if self.booster is not model else None
        if classes is not None:
            self.classes: list[Any] | None = np.asarray(classes).tolist()
        else:
            self.classes = objective_classes(self.objective, self.booster.num_model_per_iteration())

    @property
    def model_type(self) -> str:
        if self.booster is self.estimator:
            return f"Booster({self.objective})"
        return type(self.estimator).__name__

    @property
    def has_probabilities(self) -> bool:
        return self.classes is not None

    @cached_property
    def feature_names(self) -> list[str] | None:
        return [str(n) for n in self.booster.feature_name()]

    @cached_property
    def n_features(self) -> int | None:
        return int(self.booster.num_feature())

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        if not all_numeric:
            raise ValueError("LightGBM models take numeric columns only here")

    def predict(self, rows: list[list[Any]]) -> Prediction:
        raw = self.booster.predict(np.asarray(rows, dtype=np.float64))
        return booster_answer(self.classes, raw)
