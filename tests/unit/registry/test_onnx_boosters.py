"""ONNX twins of XGBoost, LightGBM and CatBoost models (registry/onnx_boosters.py, with
onnx_convert, onnx_verify and optimize.convert_and_verify).

The native side is a small adapter calling the library (predict_proba / predict, or the
Booster's own output), answering as the native runtimes do (probabilities rounded).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import catboost
import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import xgboost
from onnx import helper
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.model import LoadedModel
from registry.onnx_convert import convert, split_points
from registry.onnx_verify import missing_rows, sample_rows, verify
from registry.optimize import VERIFIED, convert_and_verify
from registry.signature import Feature, Signature
from runtime.base import Prediction, classifier_answer, values_answer
from runtime.onnx import OnnxRuntime

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 4))
X[RNG.random(X.shape) < 0.1] = np.nan  # the boosters learn where missing values go
_x = np.nan_to_num(X)
Y = (_x[:, 0] + _x[:, 1] > 0).astype(int) + (_x[:, 2] > 0.8)  # 3 classes
Y_VALUE = 2 * _x[:, 0] - _x[:, 3] + RNG.normal(scale=0.1, size=len(X))
BITS = RNG.integers(0, 2, size=(300, 4)).astype(float)  # 0/1 features
Y_BITS = (BITS[:, 0] + BITS[:, 1] > 0).astype(int) + BITS[:, 2].astype(int)
TREES: dict[str, Any] = {"n_estimators": 30, "n_jobs": 1}  # one thread: the machine is shared
LGB: dict[str, Any] = {"num_leaves": 7, "verbose": -1}
CAT: dict[str, Any] = {
    "iterations": 30,
    "depth": 3,
    "verbose": 0,
    "allow_writing_files": False,
    "thread_count": 1,
}


class Native:
    """Stands in for runtime/xgboost.py, lightgbm.py, catboost.py: the library answers."""

    name = "native"
    flavor = "native"
    inline_rows = 0
    worth_caching = True
    takes_missing = True
    feature_names: list[str] | None = None
    n_features: int | None = None

    def __init__(self, estimator: Any, classes: list[Any] | None) -> None:
        self.estimator = estimator
        self.classes = classes
        self.model_type = type(estimator).__name__
        self.has_probabilities = classes is not None

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        """Rows come in signature order: nothing to fix."""

    def predict(self, rows: list[list[Any]]) -> Prediction:
        data = np.asarray(rows, dtype=np.float64)
        model = self.estimator
        if isinstance(model, xgboost.Booster | lightgbm.Booster):
            raw = np.asarray(
                model.inplace_predict(data)
                if isinstance(model, xgboost.Booster)
                else model.predict(data)
            )
            if self.classes is None:
                return values_answer(raw)
            # A binary booster gives the probability of class 1.
            proba = raw if raw.ndim == 2 else np.column_stack([1 - raw, raw])
            return classifier_answer(self.classes, proba)
        if self.classes is None:
            return values_answer(model.predict(data))
        return classifier_answer(self.classes, model.predict_proba(data))


def loaded(estimator: Any, classes: list[Any] | None, width: int = 4) -> LoadedModel:
    # As the loader builds it for a booster: every feature takes a missing value.
    signature = Signature(tuple(Feature(f"f{i}", "double", missing_ok=True) for i in range(width)))
    return LoadedModel("m", 1, None, signature, Native(estimator, classes))


CASES: dict[str, tuple[Callable[[], Any], list[Any] | None, bool]] = {
    # name: (fit the model, its classes, whether its twin is kept)
    "XGBClassifier": (
        lambda: xgboost.XGBClassifier(max_depth=3, **TREES).fit(X, Y),
        [0, 1, 2],
        True,
    ),
    "XGBRegressor": (
        lambda: xgboost.XGBRegressor(max_depth=3, **TREES).fit(X, Y_VALUE),
        None,
        True,
    ),
    "xgboost.Booster-softprob": (
        lambda: xgboost.train(
            {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
            xgboost.DMatrix(X, label=Y),
            30,
        ),
        [0, 1, 2],
        True,
    ),
    "xgboost.Booster-logistic": (
        lambda: xgboost.train(
            {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
            xgboost.DMatrix(X, label=Y > 0),
            30,
        ),
        [0, 1],
        True,
    ),
    "xgboost.Booster-named-columns": (
        lambda: xgboost.train(
            {"objective": "reg:squarederror", "max_depth": 3, "nthread": 1},
            xgboost.DMatrix(X, label=Y_VALUE, feature_names=["a", "b", "c", "d"]),
            30,
        ),
        None,
        True,
    ),
    "XGBClassifier-named-columns": (
        lambda: xgboost.XGBClassifier(max_depth=3, **TREES).fit(
            pd.DataFrame(X, columns=["a", "b", "c", "d"]), Y
        ),
        [0, 1, 2],
        True,
    ),
    "pipeline-XGBClassifier": (
        lambda: make_pipeline(StandardScaler(), xgboost.XGBClassifier(max_depth=3, **TREES)).fit(
            X, Y
        ),
        [0, 1, 2],
        True,
    ),
    # LightGBM's thresholds are float64 values that onnxmltools rounds to float32: refused.
    "LGBMClassifier": (lambda: lightgbm.LGBMClassifier(**TREES, **LGB).fit(X, Y), [0, 1, 2], False),
    "LGBMRegressor": (lambda: lightgbm.LGBMRegressor(**TREES, **LGB).fit(X, Y_VALUE), None, False),
    "lightgbm.Booster-multiclass": (
        lambda: lightgbm.train(
            {"objective": "multiclass", "num_class": 3, "num_threads": 1, **LGB},
            lightgbm.Dataset(X, label=Y),
            30,
        ),
        [0, 1, 2],
        False,
    ),
    # ... except on 0/1 features, whose one threshold (1e-35) is a float32 value: kept.
    "LGBMClassifier-bits": (
        lambda: lightgbm.LGBMClassifier(**TREES, **LGB).fit(BITS, Y_BITS),
        [0, 1, 2],
        True,
    ),
    "lightgbm.Booster-binary-bits": (
        lambda: lightgbm.train(
            {"objective": "binary", "num_threads": 1, **LGB},
            lightgbm.Dataset(BITS, label=Y_BITS > 0),
            30,
        ),
        [0, 1],
        True,
    ),
    "CatBoostClassifier": (lambda: catboost.CatBoostClassifier(**CAT).fit(X, Y), [0, 1, 2], True),
    "CatBoostRegressor": (lambda: catboost.CatBoostRegressor(**CAT).fit(X, Y_VALUE), None, True),
}


def probe_rows(estimator: Any) -> np.ndarray:
    """Rows exactly on every split of the model, and the same rows with NaN and all-NaN."""
    base = np.nan_to_num(X[:50])
    splits = sorted(set(split_points(estimator)))
    on = np.array([base[i % len(base)] for i in range(len(splits))])
    for row, (feature, threshold) in zip(on, splits, strict=True):
        row[feature] = threshold
    with_nan = on.copy()
    with_nan[np.arange(len(on)), (np.arange(len(on)) + 1) % 4] = np.nan
    return np.vstack([on, with_nan, np.full((1, 4), np.nan), X[:50]])


def assert_same(native: Prediction, twin: Prediction, is_classifier: bool) -> None:
    if is_classifier:
        assert twin.labels == native.labels
        assert all(type(label) is int for label in twin.labels)
        assert twin.probabilities is not None and native.probabilities is not None
        diff = np.abs(np.subtract(twin.probabilities, native.probabilities))
        assert diff.max() <= 1e-5 + 1e-12
    else:
        want = np.asarray(native.labels)
        assert np.isfinite(want).all()
        assert np.abs(np.asarray(twin.labels) - want).max() <= 1e-5 * max(np.abs(want).max(), 1)


@pytest.mark.parametrize("case", list(CASES))
def test_each_booster_gets_a_verified_twin_or_a_reason(
    case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    fit, classes, kept = CASES[case]
    model = loaded(fit(), classes)
    graph, verification, status = convert_and_verify(model, None)
    assert verification is not None
    assert verification.missing_rows > 1000  # NaN rows (and zeros) were checked
    if not kept:
        assert graph is None and not verification.ok
        assert status.startswith("rejected: ") and "largest difference" in status
        return
    assert status == VERIFIED, status
    assert graph is not None and verification.ok
    if not case.startswith("pipeline"):  # a pipeline's trees split scaled values
        assert verification.threshold_rows >= 3 * len(set(split_points(model.estimator))) > 0
    # The kept twin answers like the library on its split thresholds and with NaN.
    twin = dataclasses.replace(model, twin=OnnxRuntime(graph, classes))
    rows = probe_rows(model.estimator).tolist()
    assert_same(model.predict(rows), twin.predict(rows), classes is not None)
    # Its declared outputs fit what it gives: onnxruntime logs nothing on a call.
    assert "VerifyOutputSizes" not in capfd.readouterr().err


def lgbm_stump() -> tuple[lightgbm.LGBMRegressor, float]:
    """One split between 0.1 and 0.2: a float64 threshold that is not a float32 value."""
    data = np.array([[0.1]] * 20 + [[0.2]] * 20)
    target = np.array([0.0] * 20 + [1.0] * 20)
    params: dict[str, Any] = {"min_child_samples": 1, "min_data_in_bin": 1, "learning_rate": 1.0}
    model = lightgbm.LGBMRegressor(n_estimators=1, num_leaves=2, n_jobs=1, verbose=-1, **params)
    model.fit(data, target)
    (threshold,) = [t for _, t in split_points(model)]
    return model, threshold


def test_lightgbm_thresholds_rounded_to_float32_are_caught_by_the_threshold_rows() -> None:
    model, threshold = lgbm_stump()
    rounded = float(np.float32(threshold))
    assert 0.1 < threshold < 0.2 and rounded != threshold
    graph = convert(model, 1)
    (tree,) = [node for node in graph.graph.node if node.op_type == "TreeEnsembleRegressor"]
    values = [a for a in tree.attribute if a.name == "nodes_values"][0].floats
    assert float(values[0]) == rounded  # onnxmltools stored the float32 rounding
    # A row between the threshold and its rounding goes the other way in the twin.
    between = float(np.nextafter(threshold, rounded))
    native = loaded(model, None, width=1)
    twin = dataclasses.replace(native, twin=OnnxRuntime(graph.SerializeToString(), None))
    assert native.predict([[between]]).labels != twin.predict([[between]]).labels
    # Random rows alone would pass it; the rows on the threshold refuse it.
    random_rows = np.random.default_rng(0).uniform(-1, 1, size=(2000, 1))
    assert verify(native, twin, random_rows, 0).ok
    graph_bytes, verification, status = convert_and_verify(native, None)
    assert graph_bytes is None and status.startswith("rejected: ")
    assert verification is not None and verification.threshold_rows == 5
    assert verification.max_abs_diff == pytest.approx(1.0)


def test_a_twin_that_differs_only_on_missing_values_is_refused() -> None:
    model = loaded(xgboost.XGBClassifier(max_depth=3, **TREES).fit(X, Y), [0, 1, 2])
    graph = convert(model.estimator, 4)
    for node in graph.graph.node:  # send every missing value the other way
        for attribute in node.attribute:
            if attribute.name == "nodes_missing_value_tracks_true":
                flipped = [1 - v for v in attribute.ints]
                attribute.CopyFrom(helper.make_attribute(attribute.name, flipped))
    twin = dataclasses.replace(model, twin=OnnxRuntime(graph.SerializeToString(), [0, 1, 2]))
    rows, on_threshold = sample_rows(model.estimator, 4, None)
    assert verify(model, twin, rows, on_threshold).ok  # no NaN among them: unnoticed
    caught = verify(model, twin, rows, on_threshold, missing_rows(rows))
    assert not caught.ok and caught.label_mismatches > 0 and caught.missing_rows > 1000


def test_catboost_with_categorical_features_stays_native_with_the_reason() -> None:
    frame = pd.DataFrame({"size": X[:, 0], "colour": np.where(Y > 0, "red", "blue")})
    model = catboost.CatBoostClassifier(cat_features=[1], **CAT).fit(frame, Y)
    signature = Signature((Feature("size", "double"), Feature("colour", "string")))
    native = LoadedModel("m", 1, None, signature, Native(model, [0, 1, 2]))
    graph, verification, status = convert_and_verify(native, None)
    assert graph is None and verification is None
    assert status.startswith("unsupported: CatBoost categorical features (columns [1])")


def test_lightgbm_behind_preprocessing_is_refused_for_its_rounded_thresholds() -> None:
    """No sample row can be placed on a threshold of scaled values: the rounding is counted."""
    pipeline = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(**TREES, **LGB))
    graph, verification, status = convert_and_verify(loaded(pipeline.fit(X, Y), [0, 1, 2]), None)
    assert graph is None and verification is None
    assert status.startswith("unsupported: ") and "LightGBM thresholds are not float32" in status
    # Alone, the same model reaches verification, which refuses it on its threshold rows.
    alone = loaded(lightgbm.LGBMClassifier(**TREES, **LGB).fit(X, Y), [0, 1, 2])
    assert convert_and_verify(alone, None)[2].startswith("rejected: ")


def test_a_pipeline_ending_in_catboost_is_unsupported_with_a_reason() -> None:
    pipeline = make_pipeline(StandardScaler(), catboost.CatBoostRegressor(**CAT)).fit(X, Y_VALUE)
    graph, verification, status = convert_and_verify(loaded(pipeline, None), None)
    assert graph is None and verification is None and status.startswith("unsupported: ")


def test_split_points_are_the_boosters_own_thresholds() -> None:
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    xgb = xgboost.XGBClassifier(max_depth=3, **TREES).fit(frame, Y)
    trees = json.loads(xgb.get_booster().save_raw("json"))["learner"]["gradient_booster"]
    want = {
        (int(f), float(np.float32(t)))
        for tree in trees["model"]["trees"]
        for f, t, left in zip(
            tree["split_indices"], tree["split_conditions"], tree["left_children"], strict=True
        )
        if left != -1
    }
    assert set(split_points(xgb)) == want and len(want) > 30

    lgb = lightgbm.LGBMRegressor(**TREES, **LGB).fit(X, Y_VALUE)
    text = lgb.booster_.model_to_string().splitlines()
    features = [
        int(v) for line in text if line.startswith("split_feature=") for v in line[14:].split()
    ]
    thresholds = [
        float(v) for line in text if line.startswith("threshold=") for v in line[10:].split()
    ]
    assert sorted(split_points(lgb)) == sorted(zip(features, thresholds, strict=True))

    cat = catboost.CatBoostRegressor(**CAT).fit(X, Y_VALUE)
    borders = cat.get_borders()
    assert set(split_points(cat)) <= {(int(f), float(b)) for f, bs in borders.items() for b in bs}
    assert set(split_points(cat))

    # The sample lies on each of them: LightGBM's with their float64 neighbours as well.
    for model, per_split in ((xgb, 3), (lgb, 5), (cat, 3)):
        splits = set(split_points(model))
        rows, on_threshold = sample_rows(model, 4, None)
        assert on_threshold == per_split * len(splits)
        for feature, threshold in splits:
            assert (rows[:, feature] == threshold).any()


def test_the_twin_of_a_booster_answers_its_objectives_classes() -> None:
    booster = CASES["xgboost.Booster-softprob"][0]()
    graph = convert(booster, 4).SerializeToString()
    answer = OnnxRuntime(graph, [0, 1, 2]).predict(X[:20].tolist())
    assert answer.probabilities is not None and len(answer.probabilities[0]) == 3
    assert set(answer.labels) <= {0, 1, 2}
    assert onnx.load_from_string(graph).graph.input[0].type.tensor_type.elem_type == 11
