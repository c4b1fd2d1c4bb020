"""Building and describing an imported joblib model (registry/importer.py, pure parts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from kernel.errors import InvalidInput
from registry.importer import build_estimator, example_frame

IRIS = load_iris()
NAMES = [str(n) for n in IRIS.feature_names]


class NoTransform:
    def fit(self, X, y=None):
        return self


@pytest.fixture(scope="module")
def on_array() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(IRIS.data, IRIS.target)


@pytest.fixture(scope="module")
def on_frame() -> LogisticRegression:
    frame = pd.DataFrame(IRIS.data, columns=NAMES)
    return LogisticRegression(max_iter=500).fit(frame, IRIS.target)


# -- build_estimator -------------------------------------------------------------------------


def test_build_without_preprocessor_is_the_model_itself(on_array) -> None:
    assert build_estimator(on_array, None) is on_array


def test_build_with_preprocessor_makes_one_pipeline(on_array) -> None:
    scaler = StandardScaler().fit(IRIS.data)
    built = build_estimator(on_array, scaler)
    assert isinstance(built, Pipeline)
    assert built.steps[0][1] is scaler
    assert built.steps[-1][1] is on_array


def test_build_with_preprocessor_without_transform_is_refused(on_array) -> None:
    with pytest.raises(InvalidInput, match="transform"):
        build_estimator(on_array, NoTransform())


# -- example_frame ---------------------------------------------------------------------------


def test_example_without_sample_uses_feature_names(on_frame) -> None:
    example = example_frame(on_frame, None)
    assert list(example.columns) == NAMES
    assert (example.to_numpy() == 0).all()
    assert len(example) > 0


def test_example_without_sample_or_names_uses_positional_names(on_array) -> None:
    example = example_frame(on_array, None)
    assert list(example.columns) == ["f0", "f1", "f2", "f3"]
    assert (example.to_numpy() == 0).all()


def test_example_of_a_pipeline_reads_its_first_step(on_array) -> None:
    scaler = StandardScaler().fit(pd.DataFrame(IRIS.data, columns=NAMES))
    pipeline = Pipeline([("pre", scaler), ("model", on_array)])
    assert list(example_frame(pipeline, None).columns) == NAMES


def test_example_of_a_model_without_width_needs_a_sample() -> None:
    with pytest.raises(InvalidInput, match="sample"):
        example_frame(object(), None)


def test_example_from_a_sample_is_put_in_the_fitted_column_order(on_frame) -> None:
    sample = pd.DataFrame(IRIS.data[:3], columns=NAMES)[list(reversed(NAMES))]
    sample["note"] = "ignored"
    example = example_frame(on_frame, sample)
    assert list(example.columns) == NAMES
    np.testing.assert_allclose(example.to_numpy(), IRIS.data[:3])


def test_example_from_a_sample_missing_named_columns_is_refused(on_frame) -> None:
    sample = pd.DataFrame(IRIS.data[:3, :3], columns=NAMES[:3])
    with pytest.raises(InvalidInput, match="petal width"):
        example_frame(on_frame, sample)


def test_example_from_a_sample_of_the_wrong_width_is_refused(on_array) -> None:
    sample = pd.DataFrame(np.zeros((2, 3)), columns=["a", "b", "c"])
    with pytest.raises(InvalidInput, match="3 columns"):
        example_frame(on_array, sample)


def test_example_from_a_sample_of_the_right_width_is_the_sample(on_array) -> None:
    sample = pd.DataFrame(IRIS.data[:2], columns=["a", "b", "c", "d"])
    assert example_frame(on_array, sample) is sample
