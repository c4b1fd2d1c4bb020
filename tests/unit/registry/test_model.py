"""`LoadedModel`: predictions, probabilities and what it says about itself (registry/model.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from registry.model import LoadedModel
from registry.signature import Feature, Signature
from runtime.sklearn import SklearnRuntime

IRIS = load_iris()
X: np.ndarray = IRIS.data
Y: np.ndarray = IRIS.target
NAMES = [str(n) for n in IRIS.feature_names]
NUMBERED = Signature(tuple(Feature(f"f{i}", "double") for i in range(4)))
NAMED = Signature(tuple(Feature(n, "double") for n in NAMES))
# A few rows per class, as plain lists as the gateway hands them over.
ROWS: list[list[float]] = X[::10].tolist()


def loaded(estimator, signature: Signature = NUMBERED, **kwargs) -> LoadedModel:
    return LoadedModel(
        name="iris",
        version=1,
        run_id="run",
        signature=signature,
        native=SklearnRuntime(estimator, signature.names, signature.all_numeric),
        **kwargs,
    )


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, Y)


def test_forest_labels_equal_estimator_predict(forest) -> None:
    result = loaded(forest).predict(ROWS)
    assert result.labels == forest.predict(np.asarray(ROWS)).tolist()


def test_forest_probabilities_equal_predict_proba(forest) -> None:
    result = loaded(forest).predict(ROWS)
    assert result.probabilities is not None
    # Every runtime rounds probabilities to 5 decimals (runtime.base.PROBABILITY_DECIMALS).
    np.testing.assert_allclose(
        result.probabilities, forest.predict_proba(np.asarray(ROWS)), rtol=0, atol=5e-6
    )
    assert result.probabilities == np.round(result.probabilities, 5).tolist()


def test_prediction_is_plain_python_for_json(forest) -> None:
    result = loaded(forest).predict(ROWS[:1])
    assert type(result.labels[0]) is int
    assert type(result.probabilities[0][0]) is float


def test_forest_with_string_labels_answers_the_labels(forest) -> None:
    names = IRIS.target_names[Y]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, names)
    result = loaded(model).predict(ROWS)
    assert result.labels == model.predict(np.asarray(ROWS)).tolist()
    assert set(result.labels) <= {"setosa", "versicolor", "virginica"}


def test_classes_and_model_type_of_a_forest(forest) -> None:
    model = loaded(forest)
    assert model.classes == [0, 1, 2]
    assert model.model_type == "RandomForestClassifier"
    assert model.has_probabilities


def test_regressor_gives_no_probabilities() -> None:
    regressor = LinearRegression().fit(X, Y.astype(float))
    model = loaded(regressor)
    result = model.predict(ROWS)
    assert result.probabilities is None
    assert model.classes is None
    np.testing.assert_allclose(result.labels, regressor.predict(np.asarray(ROWS)))


def test_numpy_fitted_model_is_given_an_array(forest) -> None:
    model = loaded(forest)
    assert not model.native.takes_frame
    assert isinstance(model.native.to_input(ROWS), np.ndarray)


@pytest.mark.filterwarnings("error")
def test_frame_fitted_model_gets_a_frame_and_no_feature_name_warning() -> None:
    frame = pd.DataFrame(X, columns=NAMES)
    estimator = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, Y)
    model = loaded(estimator, NAMED)
    assert model.native.takes_frame
    data = model.native.to_input(ROWS)
    assert isinstance(data, pd.DataFrame)
    assert list(data.columns) == NAMES
    result = model.predict(ROWS)
    assert result.labels == estimator.predict(pd.DataFrame(ROWS, columns=NAMES)).tolist()


def test_model_with_a_string_column_gets_a_frame(forest) -> None:
    signature = Signature((Feature("a", "double"), Feature("colour", "string")))
    assert loaded(forest, signature).native.takes_frame


def test_pipeline_reports_its_final_estimator_type() -> None:
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]
    ).fit(X, Y)
    model = loaded(pipeline)
    assert model.model_type == "LogisticRegression"
    assert model.classes == [0, 1, 2]
    result = model.predict(ROWS)
    assert result.labels == pipeline.predict(np.asarray(ROWS)).tolist()
    np.testing.assert_allclose(
        result.probabilities, pipeline.predict_proba(np.asarray(ROWS)), rtol=0, atol=5e-6
    )


@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_svc_labels_come_from_predict_not_argmax_of_proba() -> None:
    svc = SVC(probability=True, random_state=0).fit(X, Y)
    rows = np.random.default_rng(0).uniform(X.min(0), X.max(0), size=(500, 4))
    argmax = svc.classes_[svc.predict_proba(rows).argmax(axis=1)]
    # Platt scaling disagrees with predict on some of these rows; else this proves nothing.
    assert (argmax != svc.predict(rows)).any()
    result = loaded(svc).predict(rows.tolist())
    assert result.labels == svc.predict(rows).tolist()
    np.testing.assert_allclose(result.probabilities, svc.predict_proba(rows), rtol=0, atol=5e-6)


def test_svc_without_probability_gives_none() -> None:
    svc = SVC().fit(X, Y)
    result = loaded(svc).predict(ROWS)
    assert result.probabilities is None
    assert result.labels == svc.predict(np.asarray(ROWS)).tolist()


def test_describe_keys_and_values(forest) -> None:
    model = loaded(forest, digest="abc", metrics={"accuracy": 0.9})
    described = model.describe()
    assert set(described) == {
        "version",
        "run_id",
        "model_type",
        "flavor",
        "runtime",
        "onnx",
        "signature",
        "classes",
        "metrics",
        "sha256",
    }
    assert described["version"] == 1
    assert described["run_id"] == "run"
    assert described["model_type"] == "RandomForestClassifier"
    assert described["runtime"] == "sklearn"
    assert described["onnx"] == "not converted"
    assert described["signature"] == NUMBERED.as_dict()
    assert described["classes"] == [0, 1, 2]
    assert described["metrics"] == {"accuracy": 0.9}
    assert described["sha256"] == "abc"


def test_loaded_model_is_immutable(forest) -> None:
    model = loaded(forest)
    with pytest.raises(AttributeError):
        model.version = 2  # type: ignore[misc]
