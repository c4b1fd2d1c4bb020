"""CatBoost's runtime: `CatBoostClassifier` / `CatBoostRegressor` (or a bare `CatBoost`).

CatBoost takes NaN as a missing value in numeric features. Categorical features are given as
strings, so a model with any is given a DataFrame; otherwise a float64 array in signature order.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from runtime.base import LABEL_COLUMN, LABELS, Prediction, classifier_answer, values_answer
from runtime.boosters import BoosterRuntime


class CatBoostRuntime(BoosterRuntime):
    name = "catboost"
    flavor = "catboost"
    library = "CatBoost"

    def __init__(self, model: Any) -> None:
        self.estimator = model
        self.columns: list[str] = []
        self.cat_features = list(model.get_cat_feature_indices())
        classes = getattr(model, "classes_", None)
        is_classifier = (
            type(model).__name__ == "CatBoostClassifier"
            or getattr(model, "_estimator_type", None) == "classifier"
        )
        self.classes = (
            np.asarray(classes).tolist() if is_classifier and classes is not None else None
        )
        # CatBoost's multiclass `predict` answers a column of labels, which MLflow renders as
        # a list of one per row; its binary and regression `predict` one value per row.
        loss = str(model.get_all_params().get("loss_function", "")) if self.classes else ""
        self._output = LABEL_COLUMN if loss.startswith("MultiClass") else LABELS

    @property
    def mlflow_output(self) -> str:
        return self._output

    @cached_property
    def feature_names(self) -> list[str] | None:
        names = self.estimator.feature_names_
        return None if names is None else [str(n) for n in names]

    @cached_property
    def n_features(self) -> int | None:
        names = self.feature_names
        return None if names is None else len(names)

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        self.columns = list(columns)

    def to_input(self, rows: list[list[Any]]) -> Any:
        if self.cat_features:
            frame = pd.DataFrame(rows, columns=self.feature_names or self.columns)
            for at in self.cat_features:
                column = frame.columns[at]
                frame[column] = frame[column].map(_category)
            return frame
        return np.asarray(rows, dtype=np.float64)

    def predict(self, rows: list[list[Any]]) -> Prediction:
        data = self.to_input(rows)
        if self.classes is None:
            return values_answer(self.estimator.predict(data))
        return classifier_answer(self.classes, self.estimator.predict_proba(data))


def _category(value: Any) -> str:
    """A categorical value as CatBoost saw it in training: 3.0 sent as JSON is the category 3."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
