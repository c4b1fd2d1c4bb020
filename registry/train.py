"""The demo model of the hand-written app (docs/legacy-api.md): a random forest on iris,
trained and registered."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from registry.client import Registry
from registry.publish import Published, publish

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
EXPERIMENT = "iris_classification"


@dataclass(frozen=True)
class TrainOptions:
    """Hyperparameters and seed, so that a second version can differ from the first."""

    n_estimators: int = 100
    max_depth: int | None = 3
    seed: int = 42
    test_size: float = 0.2


def train_iris(options: TrainOptions) -> tuple[RandomForestClassifier, pd.DataFrame, float]:
    """Fit the forest on iris; returns the model, the training frame and the test accuracy."""
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=list(FEATURES))
    x_train, x_test, y_train, y_test = train_test_split(
        frame, iris.target, test_size=options.test_size, random_state=options.seed
    )
    model = RandomForestClassifier(
        n_estimators=options.n_estimators, max_depth=options.max_depth, random_state=options.seed
    )
    # Fitted on plain arrays, as the legacy API's clients send positional rows.
    model.fit(x_train.to_numpy(), y_train)
    accuracy = float(accuracy_score(y_test, model.predict(x_test.to_numpy())))
    return model, frame, accuracy


def train_and_register(
    registry: Registry,
    options: TrainOptions,
    name: str = "iris",
    alias: str | None = "production",
    onnx: bool = True,
) -> Published:
    """Train the demo model and register it as a new version of `name`."""
    model, frame, accuracy = train_iris(options)
    return publish(
        registry,
        model,
        name=name,
        experiment=EXPERIMENT,
        example=frame,
        params={
            "n_estimators": options.n_estimators,
            "max_depth": options.max_depth,
            "random_state": options.seed,
            "test_size": options.test_size,
        },
        metrics={"accuracy": accuracy},
        alias=alias,
        onnx=onnx,
    )
