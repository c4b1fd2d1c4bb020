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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
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


class Typed(PythonModel):
    """A pyfunc whose signature has a float32 and an int32 column; it answers a DataFrame of an
    int and a float column."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return pd.DataFrame({"count": model_input["count"] + 1, "scaled": model_input["small"] * 2})


#: The value the marked pyfunc raises KeyError on.
MARKER = 13.0


class Marked(PythonModel):
    """Twice `x`, and the rows of the call it was given, as a dict of columns; KeyError on a
    row holding the marker."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        if (model_input["x"] == MARKER).any():
            raise KeyError("marker")
        rows = len(model_input)
        return {"double": (model_input["x"] * 2).to_numpy(), "rows": np.full(rows, rows)}


TYPED = pd.DataFrame(
    {"small": np.array([0.1, 2.5], dtype=np.float32), "count": np.array([1, 7], dtype=np.int32)}
)
MARKED = pd.DataFrame({"x": [1.0, 2.0]})


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


#: The pyfuncs of the module, served once adopted.
PYFUNCS = ("inv_frame", "inv_typed", "inv_marked")


@pytest.fixture(scope="module")
def others(mlflow_server: MlflowServer) -> Iterator[dict[str, Any]]:
    """A regressor and the pyfuncs, logged the ordinary way; MLflow's own pyfunc of each."""
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
                # Signatures given: MLflow would infer them by running the model in a subprocess.
                mlflow.pyfunc.log_model(
                    name="t",
                    python_model=Typed(),
                    registered_model_name="inv_typed",
                    signature=infer_signature(TYPED, Typed().predict(None, TYPED)),
                    pip_requirements=["pandas"],
                )
                mlflow.pyfunc.log_model(
                    name="k",
                    python_model=Marked(),
                    registered_model_name="inv_marked",
                    signature=infer_signature(MARKED, Marked().predict(None, MARKED)),
                    pip_requirements=["pandas"],
                )
            finally:
                cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client = MlflowClient(mlflow_server.url, mlflow_server.url)
        names = ("inv_reg", *PYFUNCS)
        for name in names:
            client.set_registered_model_alias(name, "production", "1")
        pyfuncs = {n: mlflow.pyfunc.load_model(f"models:/{n}/1") for n in names}
    finally:
        restore()
    for name in PYFUNCS:
        adopted = modelgate(mlflow_server, "adopt", name, "1", "--wait", "0")
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
            models=",".join(f"{n}@production" for n in ("iris", "inv_reg", *PYFUNCS)),
            default_model="iris",
            allow_pyfunc="true",
            ready=False,
        )

        def loaded() -> bool:
            listed = gateway.http.get("/v1/models").json()["models"]
            return all(m["ready"] for m in listed) and len(listed) == 2 + len(PYFUNCS)

        wait_until(loaded, 120, "the models", interval=0.3)
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
    "a parameter without a name": (_json({"inputs": RECORDS}), "application/json; =utf-8", 415),
    "a charset without a value": (_json({"inputs": RECORDS}), "application/json; charset", 415),
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


@pytest.mark.parametrize(
    "content_type", ["application/json;", 'application/json; charset="utf-8"'], ids=str
)
def test_what_rfc_9110_allows_in_a_content_type_is_taken_where_mlflow_refuses_it(
    servers: tuple[Gateway, MlflowModelServer], content_type: str
) -> None:
    """An empty parameter and a quoted charset are valid media types (RFC 9110, 5.6.6);
    MLflow's server reads the parameters by splitting on `;` and `=`, and answers 415."""
    body = _json({"dataframe_split": SPLIT})
    ours, theirs = _both(servers, body, content_type)
    assert theirs.status_code == 415, theirs.text
    expected = _both(servers, body, JSON)[1]
    assert ours.status_code == 200, ours.text
    assert ours.json() == expected.json()


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


def _records_close(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Records of the same keys, ints equal and of the same type, floats within 1e-6."""
    assert [list(g) for g in got] == [list(w) for w in want]
    for g, w in zip(got, want, strict=True):
        for key in w:
            assert type(g[key]) is type(w[key]), key
            np.testing.assert_allclose(g[key], w[key], rtol=1e-6, atol=0)


TYPED_BODIES = {
    "json": (_json({"dataframe_split": TYPED.to_dict(orient="split")}), JSON),
    "records": (_json({"dataframe_records": TYPED.to_dict(orient="records")}), JSON),
    "csv": (TYPED.to_csv(index=False).encode(), "text/csv"),
}


@pytest.mark.parametrize("case", TYPED_BODIES)
def test_a_pyfunc_with_float32_and_int32_columns_answers_as_mlflow(
    servers: tuple[Gateway, MlflowModelServer], others: dict[str, Any], case: str
) -> None:
    """MLflow's server casts the columns to the signature's dtypes before the model's schema
    enforcement; so does the gateway. The answer is a DataFrame of an int and a float column,
    rendered as MLflow renders it (the int column stays ints)."""
    gateway, _ = servers
    body, content_type = TYPED_BODIES[case]
    ours = gateway.http.post(
        "/v1/models/inv_typed/invocations", content=body, headers={"Content-Type": content_type}
    )
    assert ours.status_code == 200, ours.text
    expected = _mlflow_answer(others["inv_typed"], body, content_type)["predictions"]
    _records_close(ours.json()["predictions"], expected)
    assert [r["count"] for r in ours.json()["predictions"]] == [2, 8]
    # Modelgate's own API answers the same numbers, each row a list.
    own = gateway.http.post(
        "/v1/models/inv_typed/predict", json={"instances": TYPED.to_numpy().tolist()}
    )
    assert own.status_code == 200, own.text
    assert own.json()["predictions"] == [[r["count"], r["scaled"]] for r in expected]


def test_an_int32_out_of_range_is_refused_where_mlflow_wraps_it(
    servers: tuple[Gateway, MlflowModelServer], others: dict[str, Any]
) -> None:
    gateway, _ = servers
    body = _json({"dataframe_records": [{"small": 1.5, "count": 2**31 + 5}]})
    ours = gateway.http.post(
        "/v1/models/inv_typed/invocations", content=body, headers={"Content-Type": JSON}
    )
    assert ours.status_code == 400, ours.text
    assert ours.json() == {
        "error_code": "BAD_REQUEST",
        "message": "row 0, column 'count': an integer out of the range of this model's 32-bit "
        "column",
    }
    # MLflow's cast wraps it around: the model sees -2147483643.
    wrapped = _mlflow_answer(others["inv_typed"], body, JSON)["predictions"]
    assert wrapped[0]["count"] == -(2**31) + 6


def test_a_pyfunc_dict_of_columns_comes_back_as_mlflow_renders_it(
    servers: tuple[Gateway, MlflowModelServer], others: dict[str, Any]
) -> None:
    gateway, _ = servers
    body = _json({"dataframe_split": MARKED.to_dict(orient="split")})
    ours = gateway.http.post(
        "/v1/models/inv_marked/invocations", content=body, headers={"Content-Type": JSON}
    )
    assert ours.status_code == 200, ours.text
    assert ours.json() == _mlflow_answer(others["inv_marked"], body, JSON)
    assert ours.json() == {"predictions": {"double": [2.0, 4.0], "rows": [2, 2]}}


def _at_once(gateway: Gateway, values: list[float]) -> list[httpx.Response]:
    """One request per value, all sent together (one thread each)."""

    def post(value: float) -> httpx.Response:
        body = {"dataframe_records": [{"x": value}]}
        return gateway.http.post("/v1/models/inv_marked/invocations", json=body)

    with ThreadPoolExecutor(len(values)) as pool:
        return list(pool.map(post, values))


def test_a_request_that_makes_a_pyfunc_raise_fails_alone_and_its_neighbours_get_answers(
    gateway_factory: GatewayFactory, others: dict[str, Any]
) -> None:
    """One predict thread and a long maximum wait: requests sent together share one call. When
    one of them makes the model's code raise, the call is split, the others are answered, and
    the guilty one is a 400 (MLflow's status for it) without the value. Before the version has
    answered anything, a lone such request is a 500: nothing shows that the model works."""
    gateway = gateway_factory(
        models="inv_marked@production",
        allow_pyfunc="true",
        predict_threads="1",
        batch_max_wait_ms="1000",
        cache_mode="off",
    )
    first = gateway.http.post(
        "/v1/models/inv_marked/invocations", json={"dataframe_records": [{"x": MARKER}]}
    )
    assert first.status_code == 500, first.text
    assert first.json() == {
        "error_code": "INTERNAL_ERROR",
        "message": "the request failed; quote the request id",
    }
    # The version has still answered nothing: the marker is blamed only because the requests
    # that came with it are answered.
    values = [1.0, MARKER, 3.0, 4.0]
    answers = _at_once(gateway, values)
    assert [a.status_code for a in answers] == [200, 400, 200, 200], [a.text for a in answers]
    schema = others["inv_marked"].metadata.get_input_schema()
    for answer, value in zip(answers, values, strict=True):
        body = _json({"dataframe_records": [{"x": value}]})
        if value != MARKER:
            # Answered by a call of their own rows, as MLflow answers them.
            assert answer.json() == _mlflow_answer(others["inv_marked"], body, JSON)
            continue
        with pytest.raises(MlflowException) as refused:
            mlflow_invocations(body, JSON, others["inv_marked"], schema)
        assert refused.value.get_http_status_code() == 400
        assert answer.json() == {
            "error_code": "BAD_REQUEST",
            "message": "the model raised KeyError on these rows, and answers others: check them "
            "against what the model expects",
        }
        assert "13" not in answer.text and "marker" not in answer.text
    # Requests sent so do share one call: three rows.
    together = _at_once(gateway, [1.0, 2.0, 3.0])
    assert [a.status_code for a in together] == [200] * 3, [a.text for a in together]
    assert [a.json()["predictions"]["rows"] for a in together] == [[3]] * 3
