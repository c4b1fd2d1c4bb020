"""`modelgate import` of XGBoost, LightGBM and CatBoost files, through the real CLI in a
subprocess, into the test MLflow server: each is registered with its own MLflow flavor, the
sample's signature and a recorded digest, and reloading it gives the file's predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.models import Model
from sklearn.datasets import load_iris, make_classification, make_regression

from devstack.processes import MlflowServer
from registry.client import Registry
from registry.digest import DIGEST_TAG, directory_digest
from tests.integration.conftest import GatewayFactory
from tests.integration.test_import_and_cli import modelgate

pytestmark = pytest.mark.integration

IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SYNTHETIC_NAMES = ["f_a", "f_b", "f_c", "f_d", "f_e"]


@dataclass
class NativeFile:
    """A model file as its user has it, the sample they pass, and what the import must give."""

    name: str
    path: Path
    sample: pd.DataFrame  # the model's input columns, in the model's order
    flavor: str
    model_class: str | None  # what MLflow's flavor loads it as
    predict: Callable[[pd.DataFrame], np.ndarray]  # the file's answers, loaded natively
    reloaded: Callable[[Any, pd.DataFrame], np.ndarray]  # the logged model's answers
    sample_csv: pd.DataFrame | None = None  # what is written to the CSV, when it differs


def _files(where: Path) -> list[NativeFile]:
    import catboost
    import lightgbm
    import xgboost

    iris = load_iris()
    iris_frame = pd.DataFrame(iris.data, columns=IRIS_NAMES)
    xs, ys = make_regression(n_samples=300, n_features=5, random_state=3)
    reg_frame = pd.DataFrame(xs, columns=SYNTHETIC_NAMES)
    xc, yc = make_classification(n_samples=300, n_features=5, n_informative=3, random_state=4)
    clf_frame = pd.DataFrame(xc, columns=SYNTHETIC_NAMES)

    # A raw Booster (xgboost.train, numpy, no feature names): only its objective says classifier.
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
        xgboost.DMatrix(iris.data, label=iris.target),
        num_boost_round=20,
    )
    booster.save_model(where / "iris.json")
    # The scikit-learn API on a named frame: the sample's columns come shuffled, with one more.
    regressor = xgboost.XGBRegressor(n_estimators=20, max_depth=3).fit(reg_frame, ys)
    regressor.save_model(where / "reg.ubj")
    shuffled = reg_frame[SYNTHETIC_NAMES[::-1]].assign(row_id=range(len(reg_frame)))
    # LightGBM on numpy: placeholder names (Column_0...), so the sample's columns are the names.
    lgb_booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7},
        lightgbm.Dataset(iris.data, iris.target),
        num_boost_round=20,
    )
    lgb_booster.save_model(where / "iris.txt")
    cat = catboost.CatBoostClassifier(
        iterations=20, depth=3, verbose=0, thread_count=1, allow_writing_files=False
    )
    cat.fit(clf_frame, yc)
    cat.save_model(str(where / "clf.cbm"))

    def proba(model: Any, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(rows))

    def plain(model: Any, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(rows))

    return [
        NativeFile(
            "native_xgb_json",
            where / "iris.json",
            iris_frame,
            "xgboost",
            "xgboost.sklearn.XGBClassifier",
            lambda rows: booster.predict(xgboost.DMatrix(rows.to_numpy())),
            proba,
        ),
        NativeFile(
            "native_xgb_ubj",
            where / "reg.ubj",
            reg_frame,
            "xgboost",
            "xgboost.sklearn.XGBRegressor",
            lambda rows: np.asarray(regressor.predict(rows)),
            plain,
            sample_csv=shuffled,
        ),
        NativeFile(
            "native_lgb_txt",
            where / "iris.txt",
            iris_frame,
            "lightgbm",
            "lightgbm.basic.Booster",
            lambda rows: np.asarray(lgb_booster.predict(rows.to_numpy())),
            plain,
        ),
        NativeFile(
            "native_cat_cbm",
            where / "clf.cbm",
            clf_frame,
            "catboost",
            None,
            lambda rows: np.asarray(cat.predict_proba(rows)),
            proba,
        ),
    ]


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer
) -> list[NativeFile]:
    """Each file imported with `modelgate import FILE --sample CSV --name NAME`."""
    where = tmp_path_factory.mktemp("native")
    files = _files(where)
    for native in files:
        csv = where / f"{native.name}.csv"
        (native.sample_csv if native.sample_csv is not None else native.sample).head(20).to_csv(
            csv, index=False
        )
        done = modelgate(
            mlflow_server,
            "import",
            str(native.path),
            "--sample",
            str(csv),
            "--name",
            native.name,
            "--force",  # no gateway runs here to judge the version
        )
        assert done.returncode == 0, done.stderr
        assert f"registered {native.name} version 1" in done.stdout
        assert "alias production -> version 1" in done.stdout
    return files


def test_each_native_file_is_registered_with_its_flavor_signature_and_digest(
    imported: list[NativeFile], registry: Registry, tmp_path: Path
) -> None:
    for native in imported:
        assert registry.alias_version(native.name, "production") == 1
        version = registry.version(native.name, 1)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=registry.download_uri(native.name, 1),
                dst_path=str(tmp_path / native.name),
                tracking_uri=registry.tracking_uri,
            )
        )
        # Modelgate-registered: the digest of what the server holds, as the loader checks it.
        assert version.tags[DIGEST_TAG] == directory_digest(local), native.name
        flavors = yaml.safe_load((local / "MLmodel").read_text())["flavors"]
        assert set(flavors) == {native.flavor, "python_function"}, native.name
        if native.model_class is not None:
            assert flavors[native.flavor]["model_class"] == native.model_class
        if native.flavor == "xgboost":
            assert flavors["xgboost"]["data"] == f"model.{native.path.suffix.lstrip('.')}"
        if native.flavor == "catboost":
            assert flavors["catboost"]["model_type"] == "CatBoostClassifier"
        mlmodel = Model.load(str(local))
        assert mlmodel.signature is not None
        inputs = mlmodel.signature.inputs.to_dict()
        assert [c["name"] for c in inputs] == list(native.sample.columns), native.name
        assert {c["type"] for c in inputs} == {"double"}
        assert mlmodel.saved_input_example_info is not None

        # The native library, loading the logged model, answers as the user's file does.
        flavor = getattr(mlflow, native.flavor)
        reloaded = flavor.load_model(str(local))
        rows = native.sample.iloc[::7]
        assert np.array_equal(native.reloaded(reloaded, rows), native.predict(rows)), native.name


def test_the_xgboost_booster_is_a_classifier_with_classes_and_probabilities(
    imported: list[NativeFile], registry: Registry, tmp_path: Path
) -> None:
    native = next(f for f in imported if f.name == "native_xgb_json")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=registry.download_uri(native.name, 1),
        dst_path=str(tmp_path),
        tracking_uri=registry.tracking_uri,
    )
    model = mlflow.xgboost.load_model(local)
    assert model.classes_.tolist() == [0, 1, 2]
    rows = native.sample.iloc[::25]
    assert model.predict(rows).tolist() == native.predict(rows).argmax(axis=1).tolist()


def test_a_native_file_without_sample_is_refused_and_nothing_registered(
    imported: list[NativeFile], mlflow_server: MlflowServer, registry: Registry
) -> None:
    native = next(f for f in imported if f.name == "native_lgb_txt")
    done = modelgate(mlflow_server, "import", str(native.path), "--name", "native_no_sample")
    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid_input: a LightGBM file needs --sample")
    assert "Traceback" not in done.stderr
    assert not registry.model_exists("native_no_sample")


def test_the_gateway_serves_each_imported_file_as_the_file_answers(
    imported: list[NativeFile], gateway_factory: GatewayFactory
) -> None:
    models = ",".join(f"{f.name}@production" for f in imported)
    gateway = gateway_factory(models=models, ready=False)
    gateway.wait_ready(timeout=45)
    for native in imported:
        rows = native.sample.iloc[::9]
        response = gateway.http.post(
            f"/v1/models/{native.name}/predict", json={"instances": rows.to_numpy().tolist()}
        )
        assert response.status_code == 200, (native.name, response.text)
        body = response.json()
        expected = native.predict(rows)
        if expected.ndim == 2:  # a classifier's probabilities
            # Every runtime rounds probabilities to PROBABILITY_DECIMALS (5) decimals.
            assert np.allclose(body["probabilities"], expected, atol=1e-5), native.name
            assert body["predictions"] == expected.argmax(axis=1).tolist(), native.name
        else:
            assert np.allclose(body["predictions"], expected, rtol=1e-6), native.name
