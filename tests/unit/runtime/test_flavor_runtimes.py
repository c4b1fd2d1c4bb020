"""Each flavor's runtime answers what its library answers: labels from the classes, rounded
probabilities, values for regressors, NaN taken as a missing value."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_regression

from kernel.errors import PredictTimeout
from runtime.base import CLASS_1_SCORE, LABEL_COLUMN, LABELS, PROBABILITY_DECIMALS, SCORE_ROWS
from runtime.catboost import CatBoostRuntime
from runtime.lightgbm import LightGBMRuntime
from runtime.pyfunc import PyfuncRuntime, as_values
from runtime.xgboost import XGBoostRuntime

X, Y = load_iris(return_X_y=True)
ROWS = X[::7].tolist() + [[np.nan, 3.0, 5.0, 2.0], [5.0, np.nan, np.nan, np.nan]]
XR, YR = make_regression(120, 4, random_state=0)


def _close(ours: list[list[float]] | None, theirs: Any) -> None:
    assert ours is not None
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=0, atol=5e-6)
    assert ours == np.round(ours, PROBABILITY_DECIMALS).tolist()


def test_xgboost_estimator_and_booster_answer_alike() -> None:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, Y)
    runtime = XGBoostRuntime(model)
    runtime.bind(("a", "b", "c", "d"), True)
    answer = runtime.predict(ROWS)
    assert answer.labels == model.predict(np.asarray(ROWS)).tolist()
    _close(answer.probabilities, model.predict_proba(np.asarray(ROWS)))
    assert runtime.classes == [0, 1, 2] and runtime.takes_missing and runtime.n_features == 4
    booster = XGBoostRuntime(model.get_booster())
    assert booster.classes == [0, 1, 2] and booster.model_type == "Booster(multi:softprob)"
    alike = booster.predict(ROWS)
    assert (alike.labels, alike.probabilities) == (answer.labels, answer.probabilities)
    # MLflow's flavor answers the estimator's labels, and a bare booster's probabilities.
    assert runtime.mlflow_output == LABELS and answer.scores is None
    assert booster.mlflow_output == SCORE_ROWS
    np.testing.assert_allclose(alike.scores, answer.probabilities, rtol=0, atol=5e-6)


def test_xgboost_binary_booster_and_regressor() -> None:
    import xgboost

    binary = xgboost.train(
        {"objective": "binary:logistic"}, xgboost.DMatrix(X, (Y == 1).astype(int)), 5
    )
    runtime = XGBoostRuntime(binary)
    p1 = binary.inplace_predict(np.asarray(ROWS))
    answer = runtime.predict(ROWS)
    _close(answer.probabilities, np.column_stack([1 - p1, p1]))
    assert answer.labels == (p1 > 0.5).astype(int).tolist()
    assert runtime.mlflow_output == CLASS_1_SCORE
    np.testing.assert_allclose(answer.scores, p1, rtol=1e-12)  # unrounded, one per row
    reg = xgboost.XGBRegressor(n_estimators=5).fit(XR, YR)
    values = XGBoostRuntime(reg).predict(XR[:5].tolist())
    assert values.probabilities is None
    np.testing.assert_allclose(values.labels, reg.predict(XR[:5]), rtol=1e-6)
    softmax = xgboost.train(
        {"objective": "multi:softmax", "num_class": 3}, xgboost.DMatrix(X, Y), 3
    )
    assert XGBoostRuntime(softmax).classes is None  # labels without probabilities


def test_lightgbm_estimator_and_booster_answer_alike() -> None:
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, Y)
    runtime = LightGBMRuntime(model)
    runtime.bind(("a", "b", "c", "d"), True)
    answer = runtime.predict(ROWS)
    assert answer.labels == model.predict(np.asarray(ROWS)).tolist()
    _close(answer.probabilities, model.predict_proba(np.asarray(ROWS)))
    booster = LightGBMRuntime(lightgbm.Booster(model_str=model.booster_.model_to_string()))
    assert booster.classes == [0, 1, 2] and booster.model_type == "Booster(multiclass)"
    alike = booster.predict(ROWS)
    assert (alike.labels, alike.probabilities) == (answer.labels, answer.probabilities)
    # MLflow's flavor answers the estimator's labels, and a bare booster's probabilities.
    assert runtime.mlflow_output == LABELS and answer.scores is None
    assert booster.mlflow_output == SCORE_ROWS
    np.testing.assert_allclose(alike.scores, answer.probabilities, rtol=0, atol=5e-6)
    reg = lightgbm.train({"objective": "regression", "verbose": -1}, lightgbm.Dataset(XR, YR), 5)
    values = LightGBMRuntime(lightgbm.Booster(model_str=reg.model_to_string()))
    assert values.classes is None and values.predict(XR[:3].tolist()).probabilities is None


def test_catboost_classifier_regressor_and_categorical_columns(tmp_path: Any) -> None:
    import catboost

    model = catboost.CatBoostClassifier(iterations=10, verbose=0, train_dir=str(tmp_path))
    model.fit(X, Y)
    runtime = CatBoostRuntime(model)
    answer = runtime.predict(ROWS)
    assert answer.labels == model.predict(np.asarray(ROWS)).ravel().tolist()
    _close(answer.probabilities, model.predict_proba(np.asarray(ROWS)))
    # Its multiclass `predict` is a column of labels (n, 1), as MLflow answers it; binary not.
    assert model.predict(np.asarray(ROWS)).ndim == 2 and runtime.mlflow_output == LABEL_COLUMN
    binary = catboost.CatBoostClassifier(iterations=5, verbose=0, train_dir=str(tmp_path))
    binary.fit(X, (Y == 1).astype(int))
    assert binary.predict(np.asarray(ROWS)).ndim == 1
    assert CatBoostRuntime(binary).mlflow_output == LABELS
    frame = pd.DataFrame({"size": XR[:, 0], "colour": np.where(XR[:, 1] > 0, "red", "blue")})
    reg = catboost.CatBoostRegressor(iterations=10, verbose=0, train_dir=str(tmp_path))
    reg.fit(frame, YR, cat_features=["colour"])
    cat = CatBoostRuntime(reg)
    cat.bind(("size", "colour"), False)
    got = cat.predict(frame.head(4).values.tolist())
    assert got.probabilities is None
    np.testing.assert_allclose(got.labels, reg.predict(frame.head(4)), rtol=1e-9)
    assert cat.mlflow_output == LABELS


class _Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = threading.Event()

    def predict(self, frame: pd.DataFrame) -> Any:
        self.release.wait(self.seconds)
        return frame.iloc[:, 0] * 2


def test_pyfunc_answers_values_and_times_out() -> None:
    quick = PyfuncRuntime(_Slow(0), timeout_seconds=5)
    quick.bind(("x",), True)
    assert quick.predict([[1.0], [2.5]]).labels == [2.0, 5.0]
    slow_model = _Slow(30)
    slow = PyfuncRuntime(slow_model, timeout_seconds=0.2)
    slow.bind(("x",), True)
    started = time.monotonic()
    with pytest.raises(PredictTimeout, match="within 0.2 s"):
        slow.predict([[1.0]])
    assert time.monotonic() - started < 5
    slow_model.release.set()


def test_pyfunc_outputs_become_one_plain_value_per_row() -> None:
    assert as_values(np.array([[1], [2]]), 2) == [1, 2]
    assert as_values(pd.DataFrame({"a": ["x", "y"]}), 2) == ["x", "y"]
    assert as_values(pd.DataFrame({"a": [1, 2], "b": [3, 4]}), 2) == [[1, 3], [2, 4]]
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        as_values([1, 2, 3], 2)
