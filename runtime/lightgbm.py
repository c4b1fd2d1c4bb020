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

from runtime.base import SCORES, Prediction
from runtime.boosters import BoosterRuntime, booster_answer, objective_classes


class LightGBMRuntime(BoosterRuntime):
    name = "lightgbm"
    flavor = "lightgbm"
    library = "LightGBM"

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

    @cached_property
    def feature_names(self) -> list[str] | None:
        return [str(n) for n in self.booster.feature_name()]

    @cached_property
    def n_features(self) -> int | None:
        return int(self.booster.num_feature())

    def predict(self, rows: list[list[Any]]) -> Prediction:
        raw = self.booster.predict(np.asarray(rows, dtype=np.float64))
        return booster_answer(self.classes, raw, self.mlflow_output in SCORES)
