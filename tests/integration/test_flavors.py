"""Models logged the ordinary MLflow way, with no Modelgate tag, served by a live gateway and a
worker: scikit-learn (skops, cloudpickle), XGBoost, LightGBM, CatBoost and pyfunc.

Each is logged as its users log it (`mlflow.<flavor>.log_model(..., registered_model_name=N)`)
and given the alias `production` with MLflow's own client. Answers must equal the library's own
predict/predict_proba within 1e-5, missing values included where the flavor takes them.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from typing import Any

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from devstack.processes import Gateway, MlflowServer, wait_until
from registry.digest import DIGEST_TAG
from registry.trust import ADOPTED, FIRST_USE, TRUST_TAG
from tests.integration.conftest import NO_REQUIREMENTS, GatewayFactory, WorkerFactory, logging_to
from tests.integration.test_import_and_cli import modelgate
from tests.integration.test_jobs import csv_results, wait_done

COLUMNS = ["f_a", "f_b", "f_c", "f_d"]
SERVED = (
    "fl_skops",
    "fl_xgb",
    "fl_xgb_booster",
    "fl_lgb",
    "fl_lgb_booster",
    "fl_lgb_reg",
    "fl_cb",
)
#: Rows with missing values, for the flavors that take them (boosters always do).
MISSING_ROWS = [[None, 3.0, 5.0, 2.0], [5.0, None, None, 0.2]]


class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A pyfunc of the test's own: twice the first column."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input.iloc[:, 0] * 2


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return pd.DataFrame(x, columns=COLUMNS), y


@pytest.fixture(scope="module")
def logged(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Log and alias every model; returns the native objects by registered name."""
    import catboost
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    frame, y = _data()
    restore = logging_to(mlflow_server.url)
    natives: dict[str, Any] = {
        "fl_skops": RandomForestClassifier(10, random_state=0).fit(frame, y),
        "fl_pickle": RandomForestClassifier(5, random_state=0).fit(frame, y),
        "fl_xgb": xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(frame, y),
        "fl_strict": xgboost.XGBClassifier(n_estimators=5).fit(frame, y),
        "fl_xgb_booster": xgboost.train(
            {"objective": "binary:logistic"}, xgboost.DMatrix(frame, (y == 1).astype(int)), 10
        ),
        "fl_lgb": lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, y),
        "fl_lgb_booster": lightgbm.train(
            {"objective": "multiclass", "num_class": 3, "verbose": -1},
            lightgbm.Dataset(frame, y),
            10,
        ),
        "fl_lgb_reg": lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(frame, y * 1.5),
        # A categorical column: served by CatBoost itself, its ONNX export refused.
        "fl_cb_cat": catboost.CatBoostClassifier(
            iterations=20, verbose=0, train_dir=str(tmp_path_factory.mktemp("catboost"))
        ).fit(_with_colour(frame), y, cat_features=["colour"]),
        "fl_cb": catboost.CatBoostClassifier(
            iterations=20, verbose=0, train_dir=str(tmp_path_factory.mktemp("catboost"))
        ).fit(frame, y),
    }
    example = frame.head(3)
    with warnings.catch_warnings(), mlflow.start_run():
        warnings.simplefilter("ignore")
        trusted = ["sklearn.tree._tree.Tree"]
        mlflow.sklearn.log_model(
            natives["fl_skops"],
            name="m",
            registered_model_name="fl_skops",
            pip_requirements=NO_REQUIREMENTS,
            input_example=example,
            skops_trusted_types=trusted,
        )
        mlflow.sklearn.log_model(
            natives["fl_pickle"],
            name="p",
            registered_model_name="fl_pickle",
            pip_requirements=NO_REQUIREMENTS,
            serialization_format="cloudpickle",
        )
        for name in ("fl_xgb", "fl_strict", "fl_xgb_booster"):
            mlflow.xgboost.log_model(
                natives[name],
                name=name,
                registered_model_name=name,
                pip_requirements=NO_REQUIREMENTS,
                input_example=example,
            )
        for name in ("fl_lgb", "fl_lgb_booster", "fl_lgb_reg"):
            mlflow.lightgbm.log_model(
                natives[name],
                name=name,
                registered_model_name=name,
                pip_requirements=NO_REQUIREMENTS,
                input_example=example,
            )
        mlflow.catboost.log_model(
            natives["fl_cb_cat"],
            name="cbcat",
            registered_model_name="fl_cb_cat",
            pip_requirements=NO_REQUIREMENTS,
            input_example=_with_colour(example),
        )
        mlflow.catboost.log_model(
            natives["fl_cb"],
            name="cb",
            registered_model_name="fl_cb",
            pip_requirements=NO_REQUIREMENTS,
            input_example=example,
        )
        # Pickled by reference, it needs this test module where it loads; by value, not.
        mlflow.pyfunc.log_model(
            name="pyref",
            python_model=Doubler(),
            registered_model_name="fl_pyfunc_ref",
            pip_requirements=NO_REQUIREMENTS,
            input_example=example,
        )
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            mlflow.pyfunc.log_model(
                name="py",
                python_model=Doubler(),
                registered_model_name="fl_pyfunc",
                pip_requirements=NO_REQUIREMENTS,
                input_example=example,
            )
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    for name in (*natives, "fl_pyfunc", "fl_pyfunc_ref"):
        client.set_registered_model_alias(name, "production", "1")
    restore()
    return natives


def _with_colour(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(colour=np.where(frame["f_a"] > 5.8, "red", "blue"))


def _expected(name: str, native: Any, rows: list[list[Any]]) -> tuple[list[Any], Any]:
    data = np.asarray(rows, dtype=np.float64)
    if name == "fl_xgb_booster":
        p1 = native.inplace_predict(data)
        return (p1 > 0.5).astype(int).tolist(), np.column_stack([1 - p1, p1])
    if name == "fl_lgb_booster":
        proba = native.predict(data)
        return proba.argmax(axis=1).tolist(), proba
    if name != "fl_cb":  # fitted on a frame, they are given one
        data = pd.DataFrame(data, columns=COLUMNS)  # type: ignore[assignment]
    if name == "fl_lgb_reg":
        return native.predict(data).tolist(), None
    return np.asarray(native.predict(data)).ravel().tolist(), native.predict_proba(data)


@pytest.fixture(scope="module")
def gateway(gateway_factory: GatewayFactory, logged: dict[str, Any]) -> Gateway:
    others = ("fl_pickle", "fl_pyfunc", "fl_cb_cat")
    models = ",".join(f"{name}@production" for name in (*SERVED, *others))
    started = gateway_factory(models=models, ready=False, cache_mode="off")
    for name in SERVED:
        wait_until(
            lambda n=name: started.http.get(f"/v1/models/{n}").json().get("ready") is True,
            120,
            f"{name} loaded",
            interval=0.3,
        )
    return started


def _describe(gateway: Gateway, name: str) -> dict[str, Any]:
    return dict(gateway.http.get(f"/v1/models/{name}").json())


@pytest.mark.parametrize("name", SERVED)
def test_each_flavor_answers_as_its_library(
    gateway: Gateway, logged: dict[str, Any], name: str
) -> None:
    frame, _ = _data()
    rows = frame.iloc[::9].values.tolist()
    if name != "fl_skops":  # the boosters take missing values, always
        rows += MISSING_ROWS
    answer = gateway.http.post(f"/v1/models/{name}/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    labels, proba = _expected(name, logged[name], rows)
    if proba is None:
        assert body["probabilities"] is None
        np.testing.assert_allclose(body["predictions"], labels, rtol=0, atol=1e-5)
    else:
        assert body["predictions"] == labels
        np.testing.assert_allclose(body["probabilities"], proba, rtol=0, atol=1e-5)
    described = _describe(gateway, name)["versions"][0]
    flavor = name.split("_")[1].replace("skops", "sklearn").replace("cb", "catboost")
    assert described["flavor"] == {"lgb": "lightgbm", "xgb": "xgboost"}.get(flavor, flavor)
    assert [c["name"] for c in described["signature"]] == COLUMNS


@pytest.mark.parametrize("name", SERVED)
def test_invocations_answer_as_mlflow_s_flavor_answers(
    gateway: Gateway, mlflow_server: MlflowServer, name: str
) -> None:
    """`/invocations` answers what `mlflow models serve` would: MLflow's own pyfunc of the same
    version, rendered by its scoring server's `predictions_to_json`. A bare Booster's answer is
    its probabilities (binary: of class 1), the scikit-learn API's its labels."""
    frame, _ = _data()
    rows = frame.iloc[::7].values.tolist()
    if name != "fl_skops":
        rows += MISSING_ROWS
    answer = gateway.http.post(f"/v1/models/{name}/invocations", json=_split(rows))
    assert answer.status_code == 200, answer.text
    _assert_as_mlflow(answer.json()["predictions"], _mlflow_answer(mlflow_server, name, rows))


def test_a_booster_s_scores_come_from_the_cache_as_they_were_answered(
    gateway_factory: GatewayFactory, mlflow_server: MlflowServer, logged: dict[str, Any]
) -> None:
    boosters = ("fl_xgb_booster", "fl_lgb_booster")
    cached = gateway_factory(models=",".join(f"{n}@production" for n in boosters), cache_mode="on")
    rows = _data()[0].iloc[::11].values.tolist()
    for name in boosters:
        expected = _mlflow_answer(mlflow_server, name, rows)
        hits = []
        for _ in range(2):
            answer = cached.http.post(f"/v1/models/{name}/invocations", json=_split(rows))
            assert answer.status_code == 200, answer.text
            _assert_as_mlflow(answer.json()["predictions"], expected)
            hits.append(int(answer.headers["x-cache-hits"]))
        assert hits == [0, len(rows)], hits


def _split(rows: list[list[Any]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": COLUMNS, "data": rows}}


def _mlflow_answer(mlflow_server: MlflowServer, name: str, rows: list[list[Any]]) -> Any:
    """What `mlflow models serve` answers: the version's pyfunc, rendered by MLflow's scoring
    server (`predictions_to_json`)."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    table = pd.DataFrame(rows, columns=COLUMNS, dtype="float64")
    restore = logging_to(mlflow_server.url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = io.StringIO()
            predictions_to_json(mlflow.pyfunc.load_model(f"models:/{name}/1").predict(table), out)
    finally:
        restore()
    return json.loads(out.getvalue())["predictions"]


def _assert_as_mlflow(got: Any, expected: Any) -> None:
    """Labels equal; numbers (scores, values) within 1e-6 relative, in the same shape."""
    if isinstance(expected[0], float | list):
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    else:
        assert got == expected


def test_the_first_load_records_the_digest_as_trusted_on_first_use(
    gateway: Gateway, mlflow_server: MlflowServer
) -> None:
    tags = MlflowClient(mlflow_server.url, mlflow_server.url).get_model_version("fl_xgb", "1").tags
    assert len(tags[DIGEST_TAG]) == 64 and tags[TRUST_TAG] == FIRST_USE
    assert _describe(gateway, "fl_xgb")["versions"][0]["sha256"] == tags[DIGEST_TAG]


def test_pickle_and_pyfunc_are_refused_with_the_settings_they_need(gateway: Gateway) -> None:
    for name in ("fl_pickle", "fl_pyfunc"):
        wait_until(lambda n=name: _describe(gateway, n)["last_error"], 60, f"{name} refused")
    pickle = _describe(gateway, "fl_pickle")
    assert not pickle["ready"]
    assert "MODELGATE_ALLOW_PICKLE=true" in pickle["last_error"]
    assert "modelgate adopt" in pickle["last_error"]
    pyfunc = _describe(gateway, "fl_pyfunc")
    assert not pyfunc["ready"] and "MODELGATE_ALLOW_PYFUNC=true" in pyfunc["last_error"]


def test_a_worker_job_runs_on_a_booster_with_empty_cells(
    gateway: Gateway, worker_factory: WorkerFactory, logged: dict[str, Any]
) -> None:
    worker_factory()
    frame, _ = _data()
    rows = frame.iloc[::5].values.tolist() + MISSING_ROWS
    lines = ["rid," + ",".join(COLUMNS)]
    for i, row in enumerate(rows):
        lines.append(f"r{i}," + ",".join("" if v is None else repr(v) for v in row))
    submitted = gateway.http.post(
        "/v1/models/fl_xgb/jobs",
        content="\n".join(lines).encode(),
        headers={"content-type": "text/csv"},
        params={"id_columns": "rid"},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert wait_done(gateway, job_id)["status"] == "succeeded"
    results = csv_results(gateway, job_id)
    labels, proba = _expected("fl_xgb", logged["fl_xgb"], rows)
    assert [r["rid"] for r in results] == [f"r{i}" for i in range(len(rows))]
    assert [int(r["prediction"]) for r in results] == labels
    got = [[float(r[f"proba_{c}"]) for c in (0, 1, 2)] for r in results]
    np.testing.assert_allclose(got, proba, rtol=0, atol=1e-5)


def test_pyfunc_and_pickle_are_served_once_allowed_and_adopted(
    gateway_factory: GatewayFactory, mlflow_server: MlflowServer, logged: dict[str, Any]
) -> None:
    # The module's gateway (pickle not allowed) judges the adopted version: adopt says so.
    refused = modelgate(mlflow_server, "adopt", "fl_pickle", "1")
    assert "adopted, sha256" in refused.stdout and refused.returncode == 1
    assert "the gateways refuse" in refused.stderr and "MODELGATE_ALLOW_PICKLE" in refused.stderr
    for name in ("fl_pyfunc", "fl_pyfunc_ref"):
        adopted = modelgate(mlflow_server, "adopt", name, "1", "--wait", "0")
        assert adopted.returncode == 0, adopted.stderr
        assert "adopted, sha256" in adopted.stdout
    tags = (
        MlflowClient(mlflow_server.url, mlflow_server.url).get_model_version("fl_pyfunc", "1").tags
    )
    assert tags[TRUST_TAG] == ADOPTED
    allowed = gateway_factory(
        models="fl_pyfunc@production,fl_pickle@production,fl_pyfunc_ref@production",
        allow_pyfunc="true",
        allow_pickle="true",
        ready=False,
    )
    for name in ("fl_pyfunc", "fl_pickle"):
        wait_until(lambda n=name: _describe(allowed, n)["ready"], 60, f"{name} served")
    wait_until(lambda: _describe(allowed, "fl_pyfunc_ref")["last_error"], 60, "refusal")
    # A module the model needs and that is missing here is named, never installed.
    missing = allowed.http.post(
        "/v1/models/fl_pyfunc_ref/predict", json={"instances": [[1, 0, 0, 0]]}
    )
    assert missing.status_code == 503 and missing.json()["error"]["code"] == "model_unavailable"
    assert "needs the module 'tests'" in missing.json()["error"]["message"]
    assert "Retry-After" not in missing.headers
    answer = allowed.http.post("/v1/models/fl_pyfunc/predict", json={"instances": [[1.5, 0, 0, 0]]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [3.0] and answer.json()["probabilities"] is None
    frame, _ = _data()
    rows = frame.head(4).values.tolist()
    pickled = allowed.http.post("/v1/models/fl_pickle/predict", json={"instances": rows})
    assert pickled.status_code == 200, pickled.text
    expected = logged["fl_pickle"].predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert pickled.json()["predictions"] == expected


def test_strict_serves_only_adopted_versions(
    gateway_factory: GatewayFactory, mlflow_server: MlflowServer, logged: dict[str, Any]
) -> None:
    strict = gateway_factory(models="fl_strict@production", trust="strict", ready=False)
    wait_until(
        lambda: (
            "modelgate adopt fl_strict 1" in (_describe(strict, "fl_strict")["last_error"] or "")
        ),
        60,
        "strict refusal",
        interval=0.3,
    )
    tags = (
        MlflowClient(mlflow_server.url, mlflow_server.url).get_model_version("fl_strict", "1").tags
    )
    assert DIGEST_TAG not in tags  # strict records nothing
    assert modelgate(mlflow_server, "adopt", "fl_strict", "1").returncode == 0
    wait_until(lambda: _describe(strict, "fl_strict")["ready"], 60, "adopted version served")


def test_optimize_gives_boosters_a_twin_or_the_reason_the_native_runtime_serves(
    gateway: Gateway, mlflow_server: MlflowServer, logged: dict[str, Any]
) -> None:
    xgb = modelgate(mlflow_server, "optimize", "fl_xgb", "1")
    assert xgb.returncode == 0 and "onnx verified" in xgb.stdout, xgb.stdout + xgb.stderr
    # CatBoost's ONNX export has no categorical features: refused, CatBoost itself serves.
    cat = modelgate(mlflow_server, "optimize", "fl_cb_cat", "1")
    assert cat.returncode == 0 and "onnx unsupported" in cat.stdout, cat.stdout + cat.stderr
    assert "categorical" in cat.stdout
    wait_until(
        lambda: _describe(gateway, "fl_xgb")["versions"][0]["runtime"] == "onnx",
        30,
        "the XGBoost twin served",
    )
    wait_until(
        lambda: "categorical" in _describe(gateway, "fl_cb_cat")["versions"][0]["onnx"],
        30,
        "the refusal shown",
    )
    assert _describe(gateway, "fl_cb_cat")["versions"][0]["runtime"] == "catboost"
    frame, _ = _data()
    rows = _with_colour(frame.iloc[::9]).values.tolist()
    served = gateway.http.post("/v1/models/fl_cb_cat/predict", json={"instances": rows})
    assert served.status_code == 200, served.text
    native = logged["fl_cb_cat"]
    wanted = native.predict_proba(_with_colour(frame.iloc[::9]))
    np.testing.assert_allclose(served.json()["probabilities"], wanted, rtol=0, atol=1e-5)
    frame, _ = _data()
    rows = frame.iloc[::9].values.tolist()
    answer = gateway.http.post("/v1/models/fl_xgb/predict", json={"instances": rows})
    assert answer.headers["x-model-runtime"] == "onnx"
    labels, proba = _expected("fl_xgb", logged["fl_xgb"], rows)
    assert answer.json()["predictions"] == labels
    np.testing.assert_allclose(answer.json()["probabilities"], proba, rtol=0, atol=1e-5)
    # A row with a missing value is answered by XGBoost itself, as verified twins answer only
    # complete rows.
    missing = gateway.http.post("/v1/models/fl_xgb/predict", json={"instances": MISSING_ROWS})
    labels, proba = _expected("fl_xgb", logged["fl_xgb"], MISSING_ROWS)
    assert missing.json()["predictions"] == labels
    np.testing.assert_allclose(missing.json()["probabilities"], proba, rtol=0, atol=1e-5)
