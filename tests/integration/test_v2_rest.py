"""The Open Inference Protocol V2 over REST on a live gateway: every route, JSON and binary
tensors, both input layouts, the output datatypes, pinned versions, and each bad input a 4xx
`{"error": ...}` after which the gateway keeps serving. Answers equal `/v1`'s for the same rows.

tritonclient and KServe's own client drive the same routes in test_outside_clients.py.
"""

from __future__ import annotations

import struct
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from devstack.processes import Gateway, MlflowServer, wait_until
from registry.model import LoadedModel
from tests.integration.conftest import NO_REQUIREMENTS, GatewayFactory, known, logging_to, make_key

ROWS = load_iris().data[::15].tolist()
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def logged(mlflow_server: MlflowServer) -> None:
    """A classifier with string classes and a regressor, logged the ordinary way."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    data = load_iris()
    frame = pd.DataFrame(data.data, columns=NAMES)
    words = np.asarray(data.target_names)[data.target]
    restore = logging_to(mlflow_server.url)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression(max_iter=500).fit(frame, words),
            name="words",
            registered_model_name="v2_words",
            pip_requirements=NO_REQUIREMENTS,
            input_example=frame.head(2),
        )
        mlflow.sklearn.log_model(
            LinearRegression().fit(frame.iloc[:, :3], frame.iloc[:, 3]),
            name="reg",
            registered_model_name="v2_reg",
            pip_requirements=NO_REQUIREMENTS,
            input_example=frame.iloc[:2, :3],
        )
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    for name in ("v2_words", "v2_reg"):
        client.set_registered_model_alias(name, "production", "1")
    restore()


@pytest.fixture(scope="module")
def gw(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel], logged: None) -> Gateway:
    started = gateway_factory(
        models="iris@production,v2_words@production,v2_reg@production", ready=False
    )
    for name in ("iris", "v2_words", "v2_reg"):
        wait_until(
            lambda n=name: started.http.get(f"/v1/models/{n}").json().get("ready") is True,
            60,
            f"{name} loaded",
            interval=0.2,
        )
    return started


def tensor(rows: list[list[float]], datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {
        "name": "input-0",
        "shape": [len(rows), len(rows[0])],
        "datatype": datatype,
        "data": rows,
        **extra,
    }


def v1(gw: Gateway, model: str, rows: list[list[float]], version: int | None = None) -> Any:
    body: dict[str, Any] = {"instances": rows}
    if version is not None:
        body["version"] = version
    response = gw.http.post(f"/v1/models/{model}/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in body["outputs"]}


def test_probes_need_no_key_and_carry_json_bodies(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url) as bare:
        _probes(bare)


def _probes(bare: httpx.Client) -> None:
    assert bare.get("/v2/health/live").json() == {"live": True}
    assert bare.get("/v2/health/ready").json() == {"ready": True}
    server = bare.get("/v2").json()
    assert server["name"] == "modelgate" and "binary_tensor_data" in server["extensions"]
    # Model routes need a key, in the V2 error shape.
    refused = bare.get("/v2/models/iris")
    assert refused.status_code == 401 and set(refused.json()) == {"error"}
    assert refused.headers["x-request-id"]


def test_metadata_lists_what_each_version_returns(gw: Gateway) -> None:
    meta = gw.http.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert "1" in meta["versions"]
    words = outputs(gw.http.get("/v2/models/v2_words").json())
    assert words["predict"]["datatype"] == "BYTES"
    reg = gw.http.get("/v2/models/v2_reg").json()
    assert reg["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    pinned = gw.http.get("/v2/models/iris/versions/2")
    assert pinned.status_code == 200 and pinned.json()["versions"] == ["2"]
    assert pinned.headers["x-model-version"] == "2"
    assert gw.http.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert gw.http.get("/v2/models/iris/versions/99/ready").status_code == 400
    index = gw.http.post("/v2/repository/index").json()
    assert {"name": "iris", "state": "READY", "version": "1"} in index


def test_a_2d_tensor_answers_as_v1(gw: Gateway) -> None:
    expected = v1(gw, "iris", ROWS)
    for datatype, data in (("FP32", ROWS), ("FP64", [v for row in ROWS for v in row])):
        response = gw.http.post(
            "/v2/models/iris/infer",
            json={"id": "r1", "inputs": [tensor(ROWS, datatype, data=data)]},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "iris" and body["model_version"] == "1"
        assert body["id"] == "r1" and response.headers["x-model-version"] == "1"
        got = outputs(body)
        assert got["predict"] == {
            "name": "predict",
            "datatype": "INT64",
            "shape": [len(ROWS)],
            "data": expected["predictions"],
        }
        proba = np.asarray(got["predict_proba"]["data"]).reshape(got["predict_proba"]["shape"])
        assert np.allclose(proba, expected["probabilities"], atol=1e-6)


def test_one_column_per_feature_and_named_outputs(gw: Gateway) -> None:
    columns = [
        {"name": n, "shape": [len(ROWS)], "datatype": "FP64", "data": [r[j] for r in ROWS]}
        for j, n in reversed(list(enumerate(NAMES)))
    ]
    body = {
        "inputs": columns,
        "parameters": {"content_type": "pd"},
        "outputs": [{"name": "predict"}],
        "model_name": "iris",  # KServe's client sends it: ignored
    }
    response = gw.http.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["predict"]
    assert response.json()["outputs"][0]["data"] == v1(gw, "iris", ROWS)["predictions"]


def test_string_classes_and_regressors(gw: Gateway) -> None:
    words = gw.http.post("/v2/models/v2_words/infer", json={"inputs": [tensor(ROWS)]}).json()
    assert outputs(words)["predict"]["datatype"] == "BYTES"
    assert outputs(words)["predict"]["data"] == v1(gw, "v2_words", ROWS)["predictions"]
    rows3 = [r[:3] for r in ROWS]
    reg = gw.http.post("/v2/models/v2_reg/infer", json={"inputs": [tensor(rows3, "FP64")]})
    assert reg.status_code == 200, reg.text
    assert [o["name"] for o in reg.json()["outputs"]] == ["predict"]
    assert outputs(reg.json())["predict"]["datatype"] == "FP64"
    assert np.allclose(
        outputs(reg.json())["predict"]["data"], v1(gw, "v2_reg", rows3)["predictions"]
    )


def _binary_request(rows: list[list[float]], outputs_binary: bool) -> tuple[bytes, dict[str, str]]:
    raw = np.asarray(rows, dtype=np.float32).tobytes()
    header = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": {"binary_data_output": outputs_binary},
    }
    encoded = orjson.dumps(header)
    # tritonclient sends no Content-Type.
    return encoded + raw, {"Inference-Header-Content-Length": str(len(encoded))}


def test_binary_tensors_in_and_out(gw: Gateway) -> None:
    expected = v1(gw, "iris", ROWS)
    body, headers = _binary_request(ROWS, outputs_binary=True)
    response = gw.http.post("/v2/models/iris/versions/1/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    split = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:split])
    blobs = response.content[split:]
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert [o["name"] for o in header["outputs"]] == ["predict", "predict_proba"]
    labels = np.frombuffer(blobs[: sizes[0]], dtype="<i8").tolist()
    proba = np.frombuffer(blobs[sizes[0] : sizes[0] + sizes[1]], dtype="<f8").reshape(-1, 3)
    assert labels == expected["predictions"]
    assert np.allclose(proba, expected["probabilities"], atol=1e-6)
    # Binary in, JSON out.
    body, headers = _binary_request(ROWS, outputs_binary=False)
    plain = gw.http.post("/v2/models/iris/infer", content=body, headers=headers)
    assert plain.status_code == 200 and outputs(plain.json())["predict"]["data"] == labels


def test_bytes_outputs_in_binary_are_length_prefixed(gw: Gateway) -> None:
    body = {
        "inputs": [tensor(ROWS[:2])],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    response = gw.http.post("/v2/models/v2_words/infer", json=body)
    split = int(response.headers["inference-header-content-length"])
    blob = response.content[split:]
    (size,) = struct.unpack_from("<I", blob)
    assert blob[4 : 4 + size].decode() == v1(gw, "v2_words", ROWS[:2])["predictions"][0]


def test_pinned_versions_follow_v1s_rules(gw: Gateway) -> None:
    pinned = gw.http.post("/v2/models/iris/versions/2/infer", json={"inputs": [tensor(ROWS)]})
    assert pinned.status_code == 200 and pinned.json()["model_version"] == "2"
    assert outputs(pinned.json())["predict"]["data"] == v1(gw, "iris", ROWS, 2)["predictions"]
    for version in ("99", "abc", "99999999999"):
        missing = gw.http.post(
            f"/v2/models/iris/versions/{version}/infer", json={"inputs": [tensor(ROWS)]}
        )
        assert missing.status_code == 404 and set(missing.json()) == {"error"}


BAD = [
    ("a wrong shape", {"inputs": [{**tensor(ROWS), "shape": [len(ROWS), 3]}]}),
    ("a shape of three dimensions", {"inputs": [{**tensor(ROWS), "shape": [1, 1, 4]}]}),
    ("a wrong datatype", {"inputs": [tensor(ROWS, "INT64")]}),
    ("an unknown datatype", {"inputs": [tensor(ROWS, "FP128")]}),
    ("a data length", {"inputs": [{**tensor(ROWS), "data": ROWS[:-1]}]}),
    ("an unknown output", {"inputs": [tensor(ROWS)], "outputs": [{"name": "logits"}]}),
    ("an overflowing shape", {"inputs": [{**tensor(ROWS), "shape": [2**62, 2**62]}]}),
    ("too many rows", {"inputs": [{**tensor(ROWS), "shape": [100_000, 4]}]}),
    ("no inputs", {"inputs": []}),
    ("strings for numbers", {"inputs": [tensor([["a", "b", "c", "d"]], "BYTES")]}),
    (
        "an unknown column",
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
    ),
]


@pytest.mark.parametrize(("what", "body"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_get_400_in_the_v2_shape(gw: Gateway, what: str, body: dict[str, Any]) -> None:
    response = gw.http.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 400, (what, response.text)
    assert set(response.json()) == {"error"} and response.headers["x-request-id"]
    assert "'a'" not in response.text  # values are never echoed
    assert gw.http.post("/v2/models/iris/infer", json={"inputs": [tensor(ROWS)]}).status_code == 200


def test_other_refusals_in_the_v2_shape(gw: Gateway) -> None:
    cases = [
        (gw.http.post("/v2/models/nope/infer", json={"inputs": [tensor(ROWS)]}), 404),
        (gw.http.post("/v2/models/iris/infer", content=b"{"), 400),
        (
            gw.http.post(
                "/v2/models/iris/infer", content=b"x", headers={"Content-Type": "text/csv"}
            ),
            415,
        ),
        (
            gw.http.post(
                "/v2/models/iris/infer",
                content=b"{}",
                headers={"Inference-Header-Content-Length": "99"},
            ),
            400,
        ),
        (
            httpx.post(
                gw.url + "/v2/models/iris/infer",
                json={"inputs": [tensor(ROWS)]},
                headers={"Authorization": "Bearer wrong"},
            ),
            401,
        ),
        (gw.http.get("/v2/no/such/route"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"}, response.text
    # The Bearer scheme is accepted as well as X-API-Key.
    bearer = httpx.post(
        gw.url + "/v2/models/iris/infer",
        json={"inputs": [tensor(ROWS)]},
        headers={"Authorization": f"Bearer {gw.api_key}"},
    )
    assert bearer.status_code == 200


def test_a_missing_value_is_null_or_nan_as_on_v1(gw: Gateway) -> None:
    """JSON null (or a NaN in binary) is a missing value, judged by the signature as /v1
    judges null: the forest takes it, so both protocols answer the same."""
    expected = v1(gw, "iris", [[None, 3.0, 5.0, 2.0]])["predictions"]  # type: ignore[list-item]
    body = {"inputs": [tensor([[None, 3.0, 5.0, 2.0]], "FP64")]}  # type: ignore[list-item]
    response = gw.http.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    assert outputs(response.json())["predict"]["data"] == expected
    raw = np.asarray([[np.nan, 3.0, 5.0, 2.0]], dtype="<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    binary = gw.http.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert outputs(binary.json())["predict"]["data"] == expected


def test_the_rate_limit_is_a_429_with_retry_after(gw: Gateway, redis_durable: Any) -> None:
    """Infer counts as `predict`, metadata as `reads`: a key with 2 predictions a minute gets
    429 in the V2 shape, with Retry-After, on the third; its reads still pass."""
    key = make_key(redis_durable.url, predict_limit="2/minute")
    known(gw, key)
    headers = {"X-API-Key": key}
    answers = [
        httpx.post(
            gw.url + "/v2/models/iris/infer", json={"inputs": [tensor(ROWS)]}, headers=headers
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert set(answers[2].json()) == {"error"} and int(answers[2].headers["retry-after"]) >= 1
    assert httpx.get(gw.url + "/v2/models/iris", headers=headers).status_code == 200
