"""ONNX conversion and its verification (registry/onnx_convert.py, onnx_verify.py, optimize.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import registry.onnx_convert as onnx_convert
from kernel.errors import InvalidInput
from registry.model import LoadedModel
from registry.onnx_verify import sample_rows
from registry.optimize import VERIFIED, convert_and_verify
from registry.signature import Feature, Signature
from registry.train import TrainOptions, train_iris
from runtime.onnx import OnnxRuntime
from runtime.sklearn import SklearnRuntime

WINE_X, WINE_Y = load_wine(return_X_y=True)


def loaded(estimator, width: int, kind: str = "double") -> LoadedModel:
    features = tuple(Feature(f"f{i}", kind) for i in range(width))
    signature = Signature(features)
    native = SklearnRuntime(estimator, signature.names, signature.all_numeric)
    return LoadedModel("m", 1, None, signature, native)


def test_the_demo_forest_is_verified_on_rows_lying_on_its_thresholds() -> None:
    model, frame, _ = train_iris(TrainOptions())
    graph, verification, status = convert_and_verify(loaded(model, 4), frame.to_numpy()[:2])
    assert status == VERIFIED and graph is not None and verification is not None
    assert verification.threshold_rows > 100
    assert verification.label_mismatches == 0 and verification.max_abs_diff <= 1e-5
    # The kept graph answers like scikit-learn, labels exactly, on every training row.
    twin = dataclasses.replace(loaded(model, 4), twin=OnnxRuntime(graph, [0, 1, 2]))
    assert twin.runtime.name == "onnx"
    rows = frame.to_numpy().tolist()
    ours, theirs = twin.predict(rows), loaded(model, 4).predict(rows)
    assert ours.labels == theirs.labels
    # Both are rounded to 5 decimals: values within 1e-5 may round one last digit apart.
    assert np.abs(np.subtract(ours.probabilities, theirs.probabilities)).max() <= 1e-5 + 1e-12


@pytest.mark.parametrize(
    "estimator",
    [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        ExtraTreesClassifier(n_estimators=20, random_state=0),
        DecisionTreeClassifier(random_state=0),
        make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=10, random_state=0)),
        LinearRegression(),
    ],
    ids=lambda e: type(e).__name__ if not hasattr(e, "steps") else "pipeline-" + e.steps[-1][0],
)
def test_supported_estimators_are_verified(estimator) -> None:
    estimator.fit(WINE_X, WINE_Y)
    graph, verification, status = convert_and_verify(loaded(estimator, 13), WINE_X[:2])
    assert status == VERIFIED, status
    assert graph and verification and verification.rows >= 2000


def test_unsupported_models_stay_on_sklearn_with_a_reason() -> None:
    estimator = HistGradientBoostingClassifier(max_iter=5).fit(WINE_X, WINE_Y)
    graph, _, status = convert_and_verify(loaded(estimator, 13), None)
    assert graph is None and status.startswith("unsupported: skl2onnx cannot convert")
    text_model = loaded(DecisionTreeClassifier().fit(WINE_X, WINE_Y), 13, kind="string")
    assert convert_and_verify(text_model, None)[2] == "unsupported: non-numeric features"


def test_a_conversion_that_differs_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the float32 input cast, the forest's threshold rows go the other way."""
    model, _, _ = train_iris(TrainOptions())
    monkeypatch.setattr(onnx_convert, "_cast_tree_inputs", lambda graph, ops: None)
    graph, verification, status = convert_and_verify(loaded(model, 4), None)
    assert graph is None and status.startswith("rejected: ")
    assert verification is not None and not verification.ok


def split_pair() -> tuple[float, float, float]:
    """Float32 values a < x < b, 3 ulps apart in all (wide enough for scikit-learn to split on),
    whose float64 midpoint t rounds to x: scikit-learn sends x right (x > t); a float32 threshold
    rounded to nearest (x itself) would send it left."""
    a = np.float32(1.0)
    while True:
        up = [np.nextafter(a, np.float32(2.0))]
        for _ in range(2):
            up.append(np.nextafter(up[-1], np.float32(2.0)))
        x, b = up[1], up[2]
        if np.float32((float(a) + float(b)) / 2) == x:
            return float(a), float(x), float(b)
        a = up[0]


def test_a_row_between_a_threshold_and_its_float32_rounding_matches() -> None:
    a, x, b = split_pair()
    tree = DecisionTreeClassifier().fit([[a], [b]], [0, 1])
    threshold = float(tree.tree_.threshold[0])
    assert a < threshold < x < b and float(np.float32(threshold)) == x
    assert tree.predict([[x]]).tolist() == [1]
    graph, verification, status = convert_and_verify(loaded(tree, 1), None)
    assert status == VERIFIED and verification is not None and verification.threshold_rows == 3
    twin = dataclasses.replace(loaded(tree, 1), twin=OnnxRuntime(graph, [0, 1]))
    rows = [[a], [x], [b], [threshold]]
    assert twin.predict(rows).labels == tree.predict(rows).tolist() == [0, 1, 1, 1]


def test_sample_rows_cover_each_threshold_and_its_float32_neighbours() -> None:
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(WINE_X, WINE_Y)
    rows, on_threshold = sample_rows(tree, 13, None)
    splits = [
        (f, t) for f, t in zip(tree.tree_.feature, tree.tree_.threshold, strict=True) if f >= 0
    ]
    assert on_threshold == 3 * len(splits)
    for feature, threshold in splits:
        assert (rows[:, feature] == threshold).any()


def test_rows_onnxruntime_refuses_are_bad_input_not_a_server_error() -> None:
    model, frame, _ = train_iris(TrainOptions(n_estimators=5))
    graph, _, status = convert_and_verify(loaded(model, 4), frame.to_numpy()[:2])
    assert status == VERIFIED and graph is not None
    twin = OnnxRuntime(graph, [0, 1, 2])
    with pytest.raises(ValueError, match="onnxruntime refused"):
        twin.predict(np.zeros((1, 3)).tolist())  # one column short: the graph refuses the shape
    served = dataclasses.replace(loaded(model, 4), twin=twin)
    with pytest.raises(InvalidInput):
        served.predict([[1.0, 2.0, 3.0]])
