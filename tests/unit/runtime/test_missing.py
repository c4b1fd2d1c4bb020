"""`takes_missing` (runtime/missing.py): whether a fitted model takes NaN, from its tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from runtime.missing import takes_missing

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
Y = (X[:, 0] > 0).astype(int)
X_NAN = X.copy()
X_NAN[::4, 1] = np.nan
X_NAN[1::5, 2] = np.nan  # the last column too: a column transformer may pass it through


def hgb() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=5)


CASES: list[tuple[str, Callable[[], Any], bool]] = [
    ("hist gradient boosting", hgb, True),
    ("random forest (allows NaN in scikit-learn 1.9)", lambda: RandomForestClassifier(3), True),
    ("logistic regression", LogisticRegression, False),
    # A pipeline's own tags never allow NaN: its steps are read instead.
    (
        "scaler passes NaN to a model that takes it",
        lambda: make_pipeline(StandardScaler(), hgb()),
        True,
    ),
    (
        "scaler passes NaN to a model that does not",
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        False,
    ),
    ("imputer first", lambda: make_pipeline(SimpleImputer(), LogisticRegression()), True),
    ("KNN imputer first", lambda: make_pipeline(KNNImputer(), LogisticRegression()), True),
    (
        "imputer of another marker",
        lambda: make_pipeline(SimpleImputer(missing_values=-1.0), LogisticRegression()),
        False,
    ),
    (
        "column transformer that imputes every column it keeps",
        lambda: make_pipeline(
            ColumnTransformer([("num", SimpleImputer(), [0, 1])], remainder="drop"),
            LogisticRegression(),
        ),
        True,
    ),
    (
        "column transformer that passes a column through untouched",
        lambda: make_pipeline(
            ColumnTransformer([("num", SimpleImputer(), [0, 1])], remainder="passthrough"),
            LogisticRegression(),
        ),
        False,
    ),
    (
        "nested pipeline ending in an imputer",
        lambda: Pipeline(
            [
                ("prep", make_pipeline(StandardScaler(), SimpleImputer())),
                ("lr", LogisticRegression()),
            ]
        ),
        True,
    ),
]


@pytest.mark.parametrize(
    ("fit", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_takes_missing_reads_the_tags(fit: Callable[[], Any], expected: bool) -> None:
    estimator = fit()
    takes = takes_missing(estimator.fit(X_NAN if expected else X, Y))
    assert takes is expected
    if takes:  # the answer is true: the fitted model does predict rows with NaN
        assert len(estimator.predict(X_NAN)) == len(X_NAN)
    else:
        with pytest.raises(ValueError):
            estimator.predict(X_NAN)


@pytest.mark.parametrize("thing", [None, "passthrough", object(), 3, ColumnTransformer([])])
def test_anything_it_cannot_read_is_false(thing: Any) -> None:
    assert takes_missing(thing) is False
