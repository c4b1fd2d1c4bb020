"""MLflow's scoring protocol, compared with MLflow itself.

A real `mlflow models serve` of `models:/iris/1` (the version the gateway serves as
iris@production) gets the same requests as the gateway: every body format MLflow 3.x takes
(JSON dataframe_split with an index, dataframe_records, instances, inputs as records and as
columns, params, CSV, Parquet), and bad ones. Answers must be equal; for a bad body, the status
class must be, in MLflow's error shape, without the value that was sent. A regressor and a
pyfunc with a DataFrame output are compared with MLflow's own scoring function
(`mlflow.pyfunc.scoring_server.invocations`, what that server runs), in this process: one
`mlflow models serve` per module is enough (each takes about 10 s to start). The stock
deployments client (`get_deploy_client(url).predict(endpoint=..., inputs=...)`) runs in a
subprocess with `MLFLOW_TRACKING_TOKEN` set to a Modelgate key.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import cloudpickle
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc.scoring_server import invocations as mlflow_invocations
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression

from devstack.processes import Gateway, MlflowModelServer, MlflowServer, wait_until
from registry.model import LoadedModel
from registry.train import FEATURES
from tests.integration.conftest import GatewayFactory, known, logging_to, make_key
from tests.integration.test_import_and_cli import modelgate

COLUMNS = list(FEATURES)
FRAME = pd.DataFrame(load_iris().data[::7], columns=COLUMNS)  # 22 rows of every class
ROWS = FRAME.to_numpy().tolist()
RECORDS = FRAME.to_dict(orient="records")
SECRET = 987654.321  # a value no message may echo
SECRET_TEXT = "s3cr3t-value"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"


class Halves(PythonModel):
    """A pyfunc answering a DataFrame of two columns."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return pd.DataFrame({"half": model_input.iloc[:, 0] / 2, "total": model_input.sum(axis=1)})


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def others(mlflow_server: MlflowServer) -> Iterator[dict[str, Any]]:
    """A regressor and a pyfunc, logged the ordinary way; MLflow's own pyfunc of each."""
    restore = logging_to(mlflow_server.url)
    try:
        example = FRAME.head(3)
        regressor = LinearRegression().fit(FRAME, FRAME["petal_width"] * 3 + 1)
        with warnings.catch_warnings(), mlflow.start_run():
            warnings.simplefilter("ignore")
            # Requirements named: MLflow's inference of them runs the model in a subprocess.
            mlflow.sklearn.log_model(
                regressor,
                name="r",
                registered_model_name="inv_reg",
                input_example=example,
                pip_requirements=["scikit-learn"],
            )
            cloudpickle.register_pickle_by_value(sys.modules[__name__])
            try:
                mlflow.pyfunc.log_model(
                    name="f",
                    python_model=Halves(),
                    registered_model_name="inv_frame",
                    input_example=example,
                    pip_requirements=["pandas"],
                )
            finally:
                cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client = MlflowClient(mlflow_server.url, mlflow_server.url)
        for name in ("inv_reg", "inv_frame"):
            client.set_registered_model_alias(name, "production", "1")
        pyfuncs = {n: mlflow.pyfunc.load_model(f"models:/{n}/1") for n in ("inv_reg", "inv_frame")}
    finally:
        restore()
    adopted = modelgate(mlflow_server, "adopt", "inv_frame", "1", "--wait", "0")
    assert adopted.returncode == 0, adopted.stderr
    yield pyfuncs


@pytest.fixture(scope="module")
def servers(
    workdir: Any,
    mlflow_server: MlflowServer,
    iris: dict[int, LoadedModel],
    others: dict[str, Any],
    gateway_factory: GatewayFactory,
) -> Iterator[tuple[Gateway, MlflowModelServer]]:
    """The gateway, and `mlflow models serve` of the version it serves as iris@production."""
    reference = MlflowModelServer(workdir / "mlflow-serve", "models:/iris/1", mlflow_server.url)
    reference.start(wait=False)  # it starts while the gateway does
    try:
        gateway = gateway_factory(
            models="iris@production,inv_reg@production,inv_frame@production",
            default_model="iris",
            allow_pyfunc="true",
            ready=False,
        )

        def loaded() -> bool:
            listed = gateway.http.get("/v1/models").json()["models"]
            return all(m["ready"] for m in listed) and len(listed) == 3

        wait_until(loaded, 120, "the three models", interval=0.3)
        reference.wait_ready()
    except TimeoutError:
        print(reference.log_tail())
        reference.stop()
        raise
    yield gateway, reference
    reference.stop()


def _both(
    servers: tuple[Gateway, MlflowModelServer], body: bytes, content_type: str | None
) -> tuple[httpx.Response, httpx.Response]:
    gateway, reference = servers
    headers = {"Content-Type": content_type} if content_type else {}
    ours = gateway.http.post("/invocations", content=body, headers=headers)
    theirs = httpx.post(reference.url + "/invocations", content=body, headers=headers, timeout=60)
    return ours, theirs


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


SPLIT = {"columns": COLUMNS, "data": ROWS, "index": list(range(100, 100 + len(ROWS)))}
#: Every body format MLflow 3.x takes, as MLflow's own clients and pandas write them.
GOOD = {
    "dataframe_split with index": (_json({"dataframe_split": SPLIT}), JSON),
    "dataframe_split, other order and column": (
        _json(
            {
                "dataframe_split": FRAME.assign(extra=1.0)[COLUMNS[::-1] + ["extra"]].to_dict(
                    orient="split"
                )
            }
        ),
        JSON,
    ),
    "dataframe_records": (_json({"dataframe_records": RECORDS}), JSON),
    "instances (records)": (_json({"instances": RECORDS}), JSON),
    "inputs (records)": (_json({"inputs": RECORDS}), JSON),
    "inputs (columns)": (_json({"inputs": FRAME.to_dict(orient="list")}), JSON),
    "instances (columns)": (_json({"instances": FRAME.to_dict(orient="list")}), JSON),
    "inputs (one row)": (_json({"inputs": RECORDS[3]}), JSON),
    "params": (_json({"dataframe_split": SPLIT, "params": {"unused": 1}}), JSON),
    # The forest takes missing values: both servers hand NaN to scikit-learn.
    "a null": (_json({"dataframe_records": [{**RECORDS[0], "sepal_width": None}]}), JSON),
    "charset": (_json({"dataframe_records": RECORDS}), "application/json; charset=utf-8"),
    "csv": (FRAME.to_csv(index=False).encode(), "text/csv"),
    "csv with pandas' index": (FRAME.set_index(FRAME.index + 7).to_csv().encode(), "text/csv"),
    "parquet": (_parquet(FRAME.set_index(FRAME.index * 2)), PARQUET),
}


@pytest.mark.parametrize("case", GOOD)
def test_every_body_format_is_answered_as_mlflow_answers_it(
    servers: tuple[Gateway, MlflowModelServer], iris: dict[int, LoadedModel], case: str
) -> None:
    ours, theirs = _both(servers, *GOOD[case])
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    assert ours.json() == theirs.json()
    assert ours.headers["content-type"] == theirs.headers["content-type"] == JSON
    assert ours.headers["x-model-version"] == "1" and ours.headers["x-request-id"]
    labels = ours.json()["predictions"]
    assert len(labels) in (1, len(ROWS)) and set(labels) <= {0, 1, 2}


def _split(data: list[list[Any]], **more: Any) -> bytes:
    return _json({"dataframe_split": {"columns": COLUMNS, "data": data, **more}})


#: Bodies both servers refuse: (body, Content-Type, the status of both).
BAD: dict[str, tuple[bytes, str, int]] = {
    "invalid JSON": (b'{"inputs": [' + SECRET_TEXT.encode(), JSON, 400),
    "a list": (_json([RECORDS[0]]), JSON, 400),
    "no rows field": (_json({"data": ROWS}), JSON, 400),
    "two rows fields": (_json({"inputs": RECORDS, "instances": RECORDS}), JSON, 400),
    "a string in a number column": (_split([[5.1, SECRET_TEXT, 1.4, 0.2]]), JSON, 400),
    "a number out of range": (_split([[1e300, 3.0, SECRET, 0.2]]), JSON, 400),
    "a missing column": (
        _json({"dataframe_split": {"columns": COLUMNS[:3], "data": [[SECRET, 3.0, 1.0]]}}),
        JSON,
        400,
    ),
    "a record without a column": (
        _json({"dataframe_records": [{"sepal_length": SECRET}]}),
        JSON,
        400,
    ),
    "rows of the wrong width": (_split([[SECRET, 3.0, 1.0, 0.2, 9.0]]), JSON, 400),
    "an index of the wrong length": (_split(ROWS[:2], index=[1]), JSON, 400),
    "split without data": (_json({"dataframe_split": {"columns": COLUMNS}}), JSON, 400),
    "records as an object": (_json({"dataframe_records": {"a": [SECRET]}}), JSON, 400),
    "no rows": (_json({"dataframe_records": []}), JSON, 400),
    "columns of different lengths": (
        _json({"inputs": {c: [SECRET] * (1 + i % 2) for i, c in enumerate(COLUMNS)}}),
        JSON,
        400,
    ),
    # The signature names its columns: MLflow refuses rows without them, and so do we.
    "positional instances": (_json({"instances": [[SECRET, 3.5, 1.4, 0.2]]}), JSON, 400),
    "positional inputs": (_json({"inputs": [[SECRET, 3.5, 1.4, 0.2]]}), JSON, 400),
    "split without columns": (_json({"dataframe_split": {"data": [[SECRET, 3, 1, 0]]}}), JSON, 400),
    "csv with a string": (
        f"{','.join(COLUMNS)}\n5.1,{SECRET_TEXT},1.4,0.2\n".encode(),
        "text/csv",
        400,
    ),
    "csv without a column": (f"{','.join(COLUMNS[:3])}\n{SECRET},1,2\n".encode(), "text/csv", 400),
    "csv header only": (f"{','.join(COLUMNS)}\n".encode(), "text/csv", 400),
    "csv not utf-8": (b"sepal_length\n\xff\xfe\n", "text/csv", 400),
    "not parquet": (b"PAR1" + SECRET_TEXT.encode(), PARQUET, 400),
    "parquet without a column": (_parquet(FRAME.drop(columns="petal_width")), PARQUET, 400),
    "another type": (_json({"inputs": RECORDS}), "text/plain", 415),
    "another charset": (_json({"inputs": RECORDS}), "application/json; charset=latin-1", 415),
    "MLflow 1.x's format parameter": (
        _json({"dataframe_split": SPLIT}),
        "application/json; format=pandas-split",
        415,
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_bodies_are_refused_as_mlflow_refuses_them_without_echoing(
    servers: tuple[Gateway, MlflowModelServer], case: str
) -> None:
    body, content_type, status = BAD[case]
    ours, theirs = _both(servers, body, content_type)
    assert theirs.status_code == status, theirs.text
    assert ours.status_code == status, ours.text
    error = ours.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == "BAD_REQUEST"
    assert SECRET_TEXT not in ours.text and str(SECRET) not in ours.text
    assert ours.headers["x-request-id"]


def test_a_missing_content_type_is_a_clear_415_where_mlflow_fails(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    ours, theirs = _both(servers, _json({"dataframe_records": RECORDS}), None)
    assert theirs.status_code == 500 and theirs.text == "Internal Server Error"
    assert ours.status_code == 415
    assert ours.json() == {
        "error_code": "BAD_REQUEST",
        "message": "the request has no Content-Type: send application/json, text/csv or "
        "application/vnd.apache.parquet",
    }


def test_an_unknown_field_is_refused_with_the_accepted_ones(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    """MLflow ignores a field it does not know (a misspelt `params` too); Modelgate names it."""
    body = _json({"dataframe_records": RECORDS, "parameters": {"k": 1}})
    ours, theirs = _both(servers, body, JSON)
    assert theirs.status_code == 200
    assert ours.status_code == 400
    assert ours.json()["message"] == (
        "unknown field(s) 'parameters': the accepted fields are 'dataframe_split', "
        "'dataframe_records', 'instances', 'inputs' and 'params'"
    )


def test_the_probes_answer_as_mlflow_without_a_key(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    gateway, reference = servers
    for path in ("/ping", "/version"):
        ours, theirs = httpx.get(gateway.url + path), httpx.get(reference.url + path)
        assert (
            (ours.status_code, ours.content)
            == (theirs.status_code, theirs.content)
            == (
                200,
                b"\n" if path == "/ping" else mlflow.__version__.encode(),
            )
        )
        assert ours.headers["content-type"] == theirs.headers["content-type"]
        assert ours.headers["x-request-id"]
    # /health keeps the legacy API's body.
    assert httpx.get(gateway.url + "/health").json() == {"status": "healthy", "model_loaded": True}


def test_every_route_answers_alike_with_the_version_and_the_predict_limit(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    gateway, _ = servers
    body = {"dataframe_split": SPLIT}
    answers = [
        gateway.http.post(path, json=body)
        for path in (
            "/invocations",
            "/v1/models/iris/invocations",
            "/endpoints/iris/invocations",
            "/v1/models/iris@production/invocations",
        )
    ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    for answer in answers:
        assert answer.headers["x-model-name"] == "iris"
        assert answer.headers["x-model-version"] == "1"
        assert '"predict"' in answer.headers["ratelimit-policy"]


def test_keys_and_models_are_refused_in_mlflow_shape(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    gateway, _ = servers
    body = {"dataframe_split": SPLIT}
    anonymous = httpx.post(gateway.url + "/endpoints/iris/invocations", json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
    bearer = httpx.post(
        gateway.url + "/endpoints/iris/invocations",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert bearer.status_code == 200, bearer.text
    unknown = gateway.http.post("/endpoints/nope/invocations", json=body)
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    not_allowed = gateway.http.get("/invocations")
    assert not_allowed.status_code == 405 and set(not_allowed.json()) == {"error_code", "message"}


#: The stock client, as a user runs it: the key in MLFLOW_TRACKING_TOKEN, nothing else.
CLIENT = """
import json, sys
from mlflow.deployments import get_deploy_client

client = get_deploy_client(sys.argv[1])
print(json.dumps(client.predict(endpoint="iris", inputs=json.loads(sys.argv[2]))))
try:
    client.predict(endpoint="iris", inputs={"dataframe_records": [{"sepal_length": 1.0}]})
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_mlflow_deployments_client_predicts_with_a_modelgate_key(
    servers: tuple[Gateway, MlflowModelServer],
) -> None:
    gateway, reference = servers
    inputs = {"dataframe_split": SPLIT}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELGATE_"))}
    env["MLFLOW_TRACKING_TOKEN"] = str(gateway.api_key)
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, gateway.url, json.dumps(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer, error = done.stdout.splitlines()[:2]
    expected = httpx.post(reference.url + "/invocations", json=inputs, timeout=60).json()
    assert json.loads(answer) == expected
    assert "400" in error and "missing column(s)" in error


def _mlflow_answer(pyfunc: Any, body: bytes, content_type: str) -> Any:
    """What `mlflow models serve` of `pyfunc` answers (its scoring function, in process)."""
    schema = pyfunc.metadata.get_input_schema()
    answer = mlflow_invocations(body, content_type, pyfunc, schema)
    assert answer.status == 200, answer.response
    return json.loads(answer.response)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(GOOD["dataframe_split with index"][0], JSON), (GOOD["csv"][0], "text/csv")],
    ids=["json", "csv"],
)
def test_a_regressor_answers_mlflow_s_numbers(
    servers: tuple[Gateway, MlflowModelServer],
    others: dict[str, Any],
    body: bytes,
    content_type: str,
) -> None:
    gateway, _ = servers
    ours = gateway.http.post(
        "/v1/models/inv_reg/invocations", content=body, headers={"Content-Type": content_type}
    )
    assert ours.status_code == 200, ours.text
    expected = _mlflow_answer(others["inv_reg"], body, content_type)["predictions"]
    assert all(isinstance(v, float) for v in ours.json()["predictions"])
    np.testing.assert_allclose(ours.json()["predictions"], expected, rtol=1e-6, atol=0)


def test_a_pyfunc_data_frame_comes_back_as_mlflow_renders_it(
    servers: tuple[Gateway, MlflowModelServer], others: dict[str, Any]
) -> None:
    gateway, _ = servers
    body = GOOD["dataframe_records"][0]
    ours = gateway.http.post(
        "/endpoints/inv_frame/invocations", content=body, headers={"Content-Type": JSON}
    )
    assert ours.status_code == 200, ours.text
    expected = _mlflow_answer(others["inv_frame"], body, JSON)
    assert list(ours.json()["predictions"][0]) == ["half", "total"]
    assert ours.json().keys() == expected.keys()
    for got, want in zip(ours.json()["predictions"], expected["predictions"], strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-6, atol=0)


def test_the_rate_limit_is_a_429_in_mlflows_shape(
    servers: tuple[Gateway, MlflowModelServer], redis_durable: Any
) -> None:
    gateway, _ = servers
    key = make_key(redis_durable.url, predict_limit="1/minute")
    known(gateway, key)
    body = {"dataframe_split": {"columns": list(FEATURES), "data": [[5.1, 3.5, 1.4, 0.2]]}}
    answers = [
        httpx.post(gateway.url + "/invocations", json=body, headers={"X-API-Key": key})
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert int(answers[1].headers["retry-after"]) >= 1
