"""Check an ONNX conversion against the native runtime before it is kept.

The sample mixes random rows over the range the model knows with rows lying exactly on split
thresholds (and on the float32 neighbours of each threshold), where a float32 tree and a float64
comparison part ways; for a model comparing in float64 (LightGBM), on the float64 neighbours too.
A model that reads NaN as missing (the boosting libraries) is also given rows with NaN and with
zeros (LightGBM may read zero as missing). Classes must match exactly and probabilities within
`PROBABILITY_TOLERANCE`; regression values within the same tolerance, relative to their size.
Both answers are compared as served: every runtime rounds probabilities to PROBABILITY_DECIMALS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from registry.model import LoadedModel, Prediction
from registry.onnx_boosters import compares_in_double
from registry.onnx_convert import split_points
from runtime.base import PROBABILITY_DECIMALS
from runtime.sklearn import first_step

PROBABILITY_TOLERANCE = 1e-5
RANDOM_ROWS = 2000
#: At most this many distinct (feature, threshold) splits are sampled, 3 rows each.
MAX_SPLITS = 3000
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Verification:
    """What the check found; `ok` decides whether the conversion is kept."""

    ok: bool
    rows: int
    threshold_rows: int
    label_mismatches: int
    max_abs_diff: float
    reason: str = ""
    #: Rows with missing values (NaN) or zeros among `rows`.
    missing_rows: int = 0

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
    in_double = compares_in_double(estimator)
    on_threshold = []
    for feature, threshold in splits:
        for value in probes(threshold, in_double):
            row = rng.uniform(low, high)
            row[feature] = value
            on_threshold.append(row)
    parts = [random_rows] + ([np.asarray(on_threshold)] if on_threshold else [])
    if example is not None and len(example):
        parts.append(np.asarray(example, dtype=np.float64))
    return np.vstack(parts), len(on_threshold)


def probes(threshold: float, in_double: bool) -> list[float]:
    """A threshold and its float32 neighbours; with `in_double`, its float64 ones as well."""
    with np.errstate(over="ignore"):  # a threshold at the float32 limit has no neighbour
        nearest = np.float32(threshold)
        values = [
            threshold,
            float(np.nextafter(nearest, np.float32(np.inf))),
            float(np.nextafter(nearest, np.float32(-np.inf))),
        ]
    if in_double:
        values += [float(np.nextafter(threshold, np.inf)), float(np.nextafter(threshold, -np.inf))]
    return [value for value in values if np.isfinite(value)]


def missing_rows(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows with missing values, made from rows of the sample (threshold rows among them):
    each feature NaN alone, then about 30% of them, then all; and the same with zeros."""
    rng = np.random.default_rng(seed)
    count, width = rows.shape
    picked = rows[rng.choice(count, size=min(count, 600), replace=False)].copy()
    alone, scattered = picked[: len(picked) // 2], picked[len(picked) // 2 :]
    alone[np.arange(len(alone)), np.arange(len(alone)) % width] = np.nan
    scattered[rng.random(scattered.shape) < 0.3] = np.nan
    with_nan = np.vstack([alone, scattered, np.full((1, width), np.nan)])
    return np.vstack([with_nan, np.nan_to_num(with_nan, nan=0.0)])


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
        # Thresholds past float32's range only part NaN from numbers (LightGBM's 1e300).
        thresholds = [t for f, t in splits if f == feature and abs(t) < _FLOAT32_MAX]
        if thresholds:
            margin = max(max(thresholds) - min(thresholds), 1.0) * 0.25
            low[feature] = min(low[feature], min(thresholds) - margin)
            high[feature] = max(high[feature], max(thresholds) + margin)
    return low, high


def compare(expected: Prediction, actual: Prediction, is_classifier: bool) -> tuple[int, float]:
    """(label mismatches, largest absolute difference of probabilities or values).

    Probabilities are compared as served, both rounded to PROBABILITY_DECIMALS: their
    difference is rounded too, so that one step of the last decimal counts as 1e-5, not as
    1e-5 and a float error. A NaN where the other side has a number is an infinite difference.
    """
    if is_classifier:
        mismatches = sum(a != b for a, b in zip(expected.labels, actual.labels, strict=True))
        if expected.probabilities is None or actual.probabilities is None:
            return mismatches, 0.0 if expected.probabilities == actual.probabilities else np.inf
        diff = _difference(expected.probabilities, actual.probabilities)
        return mismatches, float(np.round(diff, PROBABILITY_DECIMALS).max(initial=0.0))
    want = np.asarray(expected.labels, dtype=np.float64)
    got = np.asarray(actual.labels, dtype=np.float64)
    relative = _difference(want, got) / np.maximum(np.abs(np.nan_to_num(want)), 1.0)
    return 0, float(relative.max(initial=0.0))


def _difference(want: Any, got: Any) -> np.ndarray:
    want, got = np.asarray(want, dtype=np.float64), np.asarray(got, dtype=np.float64)
    diff = np.abs(want - got)
    both_nan = np.isnan(want) & np.isnan(got)
    return np.where(both_nan, 0.0, np.nan_to_num(diff, nan=np.inf))


def verify(
    native_model: LoadedModel,
    onnx_model: LoadedModel,
    rows: np.ndarray,
    threshold_rows: int,
    missing: np.ndarray | None = None,
) -> Verification:
    """Run both on `rows` (and the `missing` rows) and judge the ONNX answers."""
    count = 0 if missing is None else len(missing)
    if missing is not None and count:
        rows = np.vstack([rows, missing])
    batch = rows.tolist()
    # The runtimes themselves, not LoadedModel.predict: that sends a call holding a missing
    # value to the native runtime, and the twin would never be compared at all.
    assert onnx_model.twin is not None, "verify() compares a twin"
    try:
        expected = native_model.native.predict(batch)
    except (ValueError, OverflowError):
        reason = "the native runtime refused the verification rows"
        return Verification(False, len(rows), threshold_rows, 0, np.inf, reason, count)
    try:
        actual = onnx_model.twin.predict(batch)
    except (ValueError, OverflowError):
        reason = "onnxruntime refused rows the native runtime answers"
        return Verification(False, len(rows), threshold_rows, 0, np.inf, reason, count)
    is_classifier = native_model.classes is not None
    mismatches, max_diff = compare(expected, actual, is_classifier)
    ok = mismatches == 0 and max_diff <= PROBABILITY_TOLERANCE
    reason = "" if ok else f"{mismatches} label mismatches, largest difference {max_diff:.3g}"
    return Verification(ok, len(rows), threshold_rows, mismatches, max_diff, reason, count)
