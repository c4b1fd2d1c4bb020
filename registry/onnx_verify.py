"""Check an ONNX conversion against scikit-learn before it is kept.

The sample mixes random rows over the range the model knows with rows lying exactly on split
thresholds (and on the float32 neighbours of each threshold), where a float32 tree and a float64
comparison part ways. Classes must match exactly and probabilities within `PROBABILITY_TOLERANCE`;
regression values within the same tolerance, relative to their size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from registry.model import LoadedModel, Prediction
from registry.onnx_convert import split_points
from runtime.sklearn import first_step

PROBABILITY_TOLERANCE = 1e-5
RANDOM_ROWS = 2000
#: At most this many distinct (feature, threshold) splits are sampled, 3 rows each.
MAX_SPLITS = 3000


@dataclass(frozen=True)
class Verification:
    """What the check found; `ok` decides whether the conversion is kept."""

    ok: bool
    rows: int
    threshold_rows: int
    label_mismatches: int
    max_abs_diff: float
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_rows(
    estimator: Any, n_features: int, example: np.ndarray | None, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Verification rows (float64) and how many of them lie on split thresholds."""
    rng = np.random.default_rng(seed)
    splits = sorted(set(split_points(first_step(estimator))))
    low, high = _ranges(estimator, n_features, example, splits)
    random_rows = rng.uniform(low, high, size=(RANDOM_ROWS, n_features))
    if len(splits) > MAX_SPLITS:
        picked = rng.choice(len(splits), size=MAX_SPLITS, replace=False)
        splits = [splits[i] for i in sorted(picked)]
    on_threshold = []
    for feature, threshold in splits:
        nearest = np.float32(threshold)
        for value in (
            threshold,
            float(np.nextafter(nearest, np.float32(np.inf))),
            float(np.nextafter(nearest, np.float32(-np.inf))),
        ):
            row = rng.uniform(low, high)
            row[feature] = value
            on_threshold.append(row)
    parts = [random_rows] + ([np.asarray(on_threshold)] if on_threshold else [])
    if example is not None and len(example):
        parts.append(np.asarray(example, dtype=np.float64))
    return np.vstack(parts), len(on_threshold)


def _ranges(
    estimator: Any, n_features: int, example: np.ndarray | None, splits: list[tuple[int, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, a range that covers what the model distinguishes (with a margin)."""
    low = np.full(n_features, -3.0)
    high = np.full(n_features, 3.0)
    first = first_step(estimator)
    mean, scale = getattr(first, "mean_", None), getattr(first, "scale_", None)
    if mean is not None and scale is not None and len(mean) == n_features:
        low = np.asarray(mean) - 3 * np.asarray(scale)
        high = np.asarray(mean) + 3 * np.asarray(scale)
    elif example is not None and len(example):
        values = np.asarray(example, dtype=np.float64)
        span = np.maximum(np.abs(values).max(axis=0), 1.0)
        low, high = values.min(axis=0) - span, values.max(axis=0) + span
    for feature in range(n_features):
        thresholds = [t for f, t in splits if f == feature]
        if thresholds:
            margin = max(max(thresholds) - min(thresholds), 1.0) * 0.25
            low[feature] = min(low[feature], min(thresholds) - margin)
            high[feature] = max(high[feature], max(thresholds) + margin)
    return low, high


def compare(expected: Prediction, actual: Prediction, is_classifier: bool) -> tuple[int, float]:
    """(label mismatches, largest absolute difference of probabilities or values)."""
    if is_classifier:
        mismatches = sum(a != b for a, b in zip(expected.labels, actual.labels, strict=True))
        if expected.probabilities is None or actual.probabilities is None:
            return mismatches, 0.0 if expected.probabilities == actual.probabilities else np.inf
        diff = np.abs(np.asarray(expected.probabilities) - np.asarray(actual.probabilities))
        return mismatches, float(diff.max(initial=0.0))
    want = np.asarray(expected.labels, dtype=np.float64)
    got = np.asarray(actual.labels, dtype=np.float64)
    relative = np.abs(want - got) / np.maximum(np.abs(want), 1.0)
    return 0, float(relative.max(initial=0.0))


def verify(
    sklearn_model: LoadedModel, onnx_model: LoadedModel, rows: np.ndarray, threshold_rows: int
) -> Verification:
    """Run both on `rows` and judge the ONNX answers."""
    batch = rows.tolist()
    expected = sklearn_model.predict(batch)
    actual = onnx_model.predict(batch)
    is_classifier = sklearn_model.classes is not None
    mismatches, max_diff = compare(expected, actual, is_classifier)
    ok = mismatches == 0 and max_diff <= PROBABILITY_TOLERANCE
    reason = "" if ok else f"{mismatches} label mismatches, largest difference {max_diff:.3g}"
    return Verification(ok, len(rows), threshold_rows, mismatches, max_diff, reason)
