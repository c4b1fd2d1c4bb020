"""`LoadedModel`: one registered model version in memory, ready to predict."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from registry.errors import InvalidInput
from registry.signature import Signature

logger = logging.getLogger(__name__)

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
)


def first_step(estimator: Any) -> Any:
    """A pipeline's first step, or the estimator itself."""
    return estimator.steps[0][1] if hasattr(estimator, "steps") else estimator


def fitted_on_names(estimator: Any) -> bool:
    """True when the estimator (or a pipeline's first step) was fitted on named columns."""
    return hasattr(first_step(estimator), "feature_names_in_")


@dataclass(frozen=True)
class Prediction:
    """Labels for each row and, for classifiers with `predict_proba`, their probabilities."""

    labels: list[Any]
    probabilities: list[list[float]] | None


@dataclass(frozen=True)
class LoadedModel:
    """An immutable, verified model version; swapped whole, never changed in place."""

    name: str
    version: int
    run_id: str | None
    signature: Signature
    estimator: Any = field(repr=False, compare=False)
    digest: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: A verified ONNX twin (`registry.onnx_runtime.OnnxModel`) that answers instead, or None.
    onnx: Any = field(default=None, repr=False, compare=False)
    #: Why the version runs on its runtime: "verified", "not converted", a refusal reason...
    onnx_status: str = "not converted"

    @property
    def runtime(self) -> str:
        return "onnx" if self.onnx is not None else "sklearn"

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

    @cached_property
    def takes_frame(self) -> bool:
        """Models fitted on named columns (or with text columns) are given a DataFrame."""
        return fitted_on_names(self.estimator) or not self.signature.all_numeric

    def to_input(self, rows: list[list[Any]]) -> Any:
        """Turn validated positional rows into what the estimator was fitted on."""
        if self.takes_frame:
            return pd.DataFrame(rows, columns=list(self.signature.names))
        return np.asarray(rows, dtype=np.float64)

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows; CPU-bound, so callers run it off the event loop.

        Values the signature allows can still be out of the estimator's range (forests work in
        float32): scikit-learn's ValueError then becomes InvalidInput, never a server error.
        """
        try:
            return self._predict(rows)
        except (ValueError, OverflowError) as exc:
            logger.info("model %s v%s refused rows: %s", self.name, self.version, type(exc))
            raise InvalidInput(
                "the model cannot score these rows (a value is out of its numeric range)"
            ) from None

    def _predict(self, rows: list[list[Any]]) -> Prediction:
        if self.onnx is not None:
            labels, probabilities = self.onnx.run(np.asarray(rows, dtype=np.float64))
            return Prediction(labels, probabilities)
        data = self.to_input(rows)
        if not self.has_probabilities:
            return Prediction(np.asarray(self.estimator.predict(data)).tolist(), None)
        proba = np.asarray(self.estimator.predict_proba(data), dtype=np.float64)
        if self.model_type in _ARGMAX_OF_PROBA:
            classes = np.asarray(self.final_estimator.classes_)
            labels = classes.take(proba.argmax(axis=1)).tolist()
        else:
            labels = np.asarray(self.estimator.predict(data)).tolist()
        return Prediction(labels, proba.tolist())

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` tells about this version."""
        return {
            "version": self.version,
            "run_id": self.run_id,
            "model_type": self.model_type,
            "runtime": self.runtime,
            "onnx": self.onnx_status,
            "signature": self.signature.as_dict(),
            "classes": self.classes,
            "metrics": dict(self.metrics),
            "sha256": self.digest,
        }
