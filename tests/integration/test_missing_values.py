"""Missing values end to end (issue 12): null and empty cells through a real gateway and worker.

A HistGradientBoostingClassifier fitted on rows with NaN is registered the ordinary way; its
registered example has NaN in column `a` only, so MLflow marks `a` not required while `b` and
`c` take missing values only because the model as a whole does (the loader's `missing_ok`).
A LogisticRegression, which takes none, answers a 422 naming the row and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from devstack.processes import Gateway, Worker, wait_until
from registry.client import Registry
from registry.publish import publish
from registry.signature import MISSING_REFUSED
from tests.integration.conftest import GatewayFactory, WorkerFactory

COLUMNS = ["a", "b", "c", "d"]
HGB, LR = "missing_hgb", "missing_lr"
#: The columns a test leaves empty: `a` is optional in the MLflow signature; `b` and `c` are
#: required there and take missing values because the model takes NaN (the loader decides).
OPTIONAL, BY_MODEL = ["a"], ["b", "c"]


def training_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(np.round(rng.normal(size=(n, 4)), 3), columns=COLUMNS)


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["a"].fillna(0) + frame["b"].fillna(1) - frame["c"].fillna(0)) > 0).astype(int)


def with_missing(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy with NaN in `columns`: each row misses one or more of them (row 0: all)."""
    out = frame.copy()
    for i in range(len(out)):
        for j, column in enumerate(columns):
            if i == 0 or (i + j) % 3 == 0:
                out.loc[out.index[i], column] = np.nan
    return out


def as_json_rows(frame: pd.DataFrame) -> list[list[float | None]]:
    """What a client sends: NaN as null."""
    return [[None if math.isnan(v) else v for v in row] for row in frame.to_numpy().tolist()]


@pytest.fixture(scope="module")
def models(registry: Registry) -> dict[str, Any]:
    train = training_frame(400, seed=1)
    nan_train = train.copy()
    nan_train.loc[::4, "a"] = np.nan
    nan_train.loc[1::5, "b"] = np.nan
    nan_train.loc[2::7, "c"] = np.nan
    hgb = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    hgb.fit(nan_train, labels_of(nan_train))
    example = train.head(50).copy()
    example.loc[::3, "a"] = np.nan  # MLflow marks `a` (only) as not required
    lr = LogisticRegression().fit(train, labels_of(train))
    for name, estimator, shown in ((HGB, hgb, example), (LR, lr, train.head(50))):
        publish(
            registry,
            estimator,
            name=name,
            experiment="missing-values",
            example=shown,
            params={},
            metrics={},
            alias="production",
            onnx=False,
        )
    return {HGB: hgb, LR: lr}


@pytest.fixture(scope="module")
def stack(
    gateway_factory: GatewayFactory, worker_factory: WorkerFactory, models: dict[str, Any]
) -> Iterator[tuple[Gateway, Worker]]:
    gateway = gateway_factory(models=f"{HGB}@production,{LR}@production")
    yield gateway, worker_factory()


def assert_answers(answer: dict[str, Any], estimator: Any, frame: pd.DataFrame) -> None:
    """The gateway's answers are the estimator's own on the same rows with NaN."""
    assert answer["predictions"] == estimator.predict(frame).tolist()
    expected = estimator.predict_proba(frame)
    assert np.allclose(answer["probabilities"], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("columns", [OPTIONAL, BY_MODEL], ids=["optional-column", "model-nan"])
def test_null_in_instances_and_records_is_nan_for_the_model(
    stack: tuple[Gateway, Worker], models: dict[str, Any], columns: list[str]
) -> None:
    gateway, _ = stack
    frame = with_missing(training_frame(12, seed=5), columns)
    rows = as_json_rows(frame)
    by_instances = gateway.http.post(f"/v1/models/{HGB}/predict", json={"instances": rows})
    assert by_instances.status_code == 200, by_instances.text
    assert_answers(by_instances.json(), models[HGB], frame)

    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    by_records = gateway.http.post(f"/v1/models/{HGB}/predict", json={"records": records})
    assert by_records.status_code == 200, by_records.text
    assert_answers(by_records.json(), models[HGB], frame)
    # The second call was answered from the cache: a missing value has a key of its own.
    assert by_records.headers["x-cache-hits"] == str(len(rows))
    # 0 in place of each null makes other rows, which the cache does not mistake for these.
    zeros = frame[frame.isna().any(axis=1)].fillna(0)
    again = gateway.http.post(
        f"/v1/models/{HGB}/predict", json={"instances": zeros.to_numpy().tolist()}
    )
    assert again.headers["x-cache-hits"] == "0"
    assert_answers(again.json(), models[HGB], zeros)


@pytest.mark.parametrize("columns", [OPTIONAL, BY_MODEL], ids=["optional-column", "model-nan"])
def test_csv_job_with_empty_cells(
    stack: tuple[Gateway, Worker], models: dict[str, Any], columns: list[str]
) -> None:
    gateway, _ = stack
    frame = with_missing(training_frame(40, seed=9), columns)
    out = io.StringIO()
    frame.assign(rid=[f"r{i}" for i in range(len(frame))]).to_csv(out, index=False)  # NaN: ""
    assert any("" in row for row in csv.reader(io.StringIO(out.getvalue())))
    accepted = gateway.http.post(
        f"/v1/models/{HGB}/jobs",
        content=out.getvalue().encode(),
        headers={"content-type": "text/csv"},
        params={"id_columns": "rid"},
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    def finished() -> bool:
        return gateway.http.get(f"/v1/jobs/{job_id}").json()["status"] in ("succeeded", "failed")

    wait_until(finished, 120, f"job {job_id}", interval=0.2)
    assert gateway.http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    results = gateway.http.get(f"/v1/jobs/{job_id}/results", headers={"accept": "text/csv"})
    got = list(csv.DictReader(io.StringIO(results.text)))
    assert [row["rid"] for row in got] == [f"r{i}" for i in range(len(frame))]
    assert_answers(
        {
            "predictions": [int(row["prediction"]) for row in got],
            "probabilities": [[float(row["proba_0"]), float(row["proba_1"])] for row in got],
        },
        models[HGB],
        frame,
    )


def test_a_model_that_takes_no_missing_values_refuses_them(stack: tuple[Gateway, Worker]) -> None:
    gateway, _ = stack
    rows = [[0.1, 0.2, 0.3, 0.4]] * 3 + [[0.1, None, 0.3, 0.4]]
    refused = gateway.http.post(f"/v1/models/{LR}/predict", json={"instances": rows})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == f"row 3, column 'b': {MISSING_REFUSED}"

    upload = b"rid,a,b,c,d\nr0,1,2,3,4\nr1,1,,3,4\n"
    job = gateway.http.post(
        f"/v1/models/{LR}/jobs",
        content=upload,
        headers={"content-type": "text/csv"},
        params={"id_columns": "rid"},
    )
    assert job.status_code == 422, job.text
    assert job.json()["error"]["message"] == f"row 1 (line 3), column 'b': {MISSING_REFUSED}"


def test_a_nan_literal_is_refused_with_a_hint_to_send_null(stack: tuple[Gateway, Worker]) -> None:
    gateway, _ = stack
    body = b'{"instances": [[0.1, NaN, 0.3, 0.4]]}'  # json.dumps of a frame's values writes NaN
    answer = gateway.http.post(
        f"/v1/models/{HGB}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "send null for a missing value" in answer.json()["error"]["message"]
