"""`SklearnRuntime`: a fitted scikit-learn estimator (or pipeline) answering validated rows."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from runtime.base import LABELS, PROBABILITY_DECIMALS, Prediction, classifier_answer

# Estimators whose `predict` is the argmax of `predict_proba` over `classes_`, so one call gives
# both. Others (SVC's Platt scaling, for one) may disagree, so they get two calls.
_ARGMAX_OF_PROBA = (
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "KNeighborsClassifier",
    "GaussianNB",
    "LogisticRegression",
    # The boosting libraries' scikit-learn API: predict is the argmax of predict_proba.
    "XGBClassifier",
    "LGBMClassifier",
    "CatBoostClassifier",
)


def first_step(estimator: Any) -> Any:
    """A pipeline's first step, or the estimator itself."""
    return estimator.steps[0][1] if hasattr(estimator, "steps") else estimator


def fitted_on_names(estimator: Any) -> bool:
    """True when the estimator (or a pipeline's first step) was fitted on named columns."""
    return hasattr(first_step(estimator), "feature_names_in_")


class SklearnRuntime:
    """In the caller's threads: a forest costs about as much for 1 row as for 100, so the
    coalescer batches its calls, and its answers are worth caching."""

    name = "sklearn"
    flavor = "sklearn"
    mlflow_output = LABELS
    inline_rows = 0
    worth_caching = True

    def __init__(
        self, estimator: Any, columns: tuple[str, ...] = (), all_numeric: bool = True
    ) -> None:
        self.estimator = estimator
        self.bind(columns, all_numeric)

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        """Fix the input columns once the signature is known (the loader builds it from the
        MLmodel file and from this runtime's feature names)."""
        self.columns = list(columns)
        # Models fitted on named columns (or with text columns) are given a DataFrame.
        self.takes_frame = fitted_on_names(self.estimator) or not all_numeric

    @cached_property
    def feature_names(self) -> list[str] | None:
        names = getattr(first_step(self.estimator), "feature_names_in_", None)
        return None if names is None else [str(n) for n in names]

    @cached_property
    def n_features(self) -> int | None:
        count = getattr(first_step(self.estimator), "n_features_in_", None)
        return None if count is None else int(count)

    @cached_property
    def takes_missing(self) -> bool:
        from runtime.missing import takes_missing

        return takes_missing(self.estimator)

    @cached_property
    def final_estimator(self) -> Any:
        steps = getattr(self.estimator, "steps", None)
        return steps[-1][1] if steps else self.estimator

    @cached_property
    def model_type(self) -> str:
        return type(self.final_estimator).__name__

    @cached_property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.final_estimator, "classes_", None)
        return None if classes is None else np.asarray(classes).tolist()

    @cached_property
    def has_probabilities(self) -> bool:
        return hasattr(self.estimator, "predict_proba") and self.classes is not None

    def to_input(self, rows: list[list[Any]]) -> Any:
        """Validated positional rows as what the estimator was fitted on."""
        if self.takes_frame:
            return pd.DataFrame(rows, columns=self.columns)
        return np.asarray(rows, dtype=np.float64)

    def predict(self, rows: list[list[Any]]) -> Prediction:
        data = self.to_input(rows)
        if not self.has_probabilities:
            return Prediction(np.asarray(self.estimator.predict(data)).tolist(), None)
        proba = np.asarray(self.estimator.predict_proba(data), dtype=np.float64)
        if self.model_type in _ARGMAX_OF_PROBA:
            return classifier_answer(self.classes or [], proba)
        labels = np.asarray(self.estimator.predict(data)).ravel().tolist()
        return Prediction(labels, np.round(proba, PROBABILITY_DECIMALS).tolist())
