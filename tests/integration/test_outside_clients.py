"""Outside clients of the Open Inference Protocol V2 get the answers `/v1` gives.

tritonclient.http (JSON and binary tensors), tritonclient.grpc and KServe's InferenceRESTClient
(JSON and binary) and InferenceGRPCClient, each the real library in a venv of its own
(`devstack/clients_venv.py`: their pins clash with ours), against one real gateway with its gRPC
port. Each client is one subprocess that makes all its calls (`tests/clients/*.py`) and prints
every call's outcome; the tests below judge them one by one, against
`POST /v1/models/iris/predict` for the same rows: the labels exactly, the probabilities within
1e-6. A wrong or missing key gets each client's own authentication error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from devstack import clients_venv
from devstack.processes import Gateway, free_port
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

#: The first test also waits for the clients' venv: about a minute when it is built cold.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SCRIPTS = Path(__file__).resolve().parents[1] / "clients"
#: A few rows of every class (iris is sorted by class: 50 of each).
ROWS = load_iris().data[[0, 1, 50, 51, 100, 149]].tolist()
PROBABILITY_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def venv() -> Path:
    """The clients' venv, built once per lock (about a minute cold, well under a second warm)."""
    clients_venv.ensure()
    return clients_venv.VENV


@pytest.fixture(scope="module")
def served(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]) -> tuple[Gateway, str]:
    """One gateway for the module, with its gRPC server, and the gRPC address."""
    grpc_port = free_port()
    gateway = gateway_factory(grpc_port=str(grpc_port))
    return gateway, f"127.0.0.1:{grpc_port}"


@pytest.fixture(scope="module")
def expected(served: tuple[Gateway, str]) -> dict[str, Any]:
    gateway, _ = served
    response = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    return response.json()


def run_client(
    script: str, venv: Path, served: tuple[Gateway, str], iris: dict[int, LoadedModel]
) -> dict[str, dict[str, Any]]:
    gateway, grpc_address = served
    assert gateway.api_key is not None
    payload = {
        "url": gateway.url,
        "grpc": grpc_address,
        "key": gateway.api_key,
        "model": "iris",
        "version": "1",
        "rows": ROWS,
        "names": list(iris[1].signature.names),
    }
    calls: dict[str, dict[str, Any]] = clients_venv.run_script(SCRIPTS / script, payload, venv)[
        "calls"
    ]
    return calls


@pytest.fixture(scope="module")
def triton_http(venv: Path, served: tuple[Gateway, str], iris: dict[int, LoadedModel]):
    return run_client("triton_http.py", venv, served, iris)


@pytest.fixture(scope="module")
def triton_grpc(venv: Path, served: tuple[Gateway, str], iris: dict[int, LoadedModel]):
    return run_client("triton_grpc.py", venv, served, iris)


@pytest.fixture(scope="module")
def kserve(venv: Path, served: tuple[Gateway, str], iris: dict[int, LoadedModel]):
    return run_client("kserve_client.py", venv, served, iris)


def value(calls: dict[str, dict[str, Any]], name: str) -> Any:
    """The value the call returned; a failed call fails the test with all the client said."""
    outcome = calls[name]
    assert outcome["ok"], f"{name} failed: {outcome}"
    return outcome["value"]


def failure(calls: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The error a call raised; a call that succeeded fails the test."""
    outcome = calls[name]
    assert not outcome["ok"], f"{name} was expected to fail, and returned {outcome['value']}"
    return outcome


def assert_answers(result: dict[str, Any], expected: dict[str, Any], name: str) -> None:
    """`predict` equals /v1's labels exactly (INT64 for iris' integer classes), and
    `predict_proba` /v1's probabilities within 1e-6, FP64 [N, n_classes]."""
    outputs = result["outputs"]
    labels, probabilities = outputs["predict"], outputs["predict_proba"]
    assert labels["datatype"] == "INT64", f"{name}: {result['outputs_meta']}"
    assert labels["shape"] == [len(ROWS)], f"{name}: {result['outputs_meta']}"
    assert labels["data"] == expected["predictions"], name
    assert probabilities["datatype"] == "FP64", f"{name}: {result['outputs_meta']}"
    assert probabilities["shape"] == [len(ROWS), len(expected["classes"])], name
    gap = np.abs(np.subtract(probabilities["data"], expected["probabilities"])).max()
    assert gap <= PROBABILITY_TOLERANCE, f"{name}: {probabilities['data']}"


TRITON_HTTP_INFERS = [
    "infer_json",
    "infer_binary",
    "infer_binary_named_outputs",
    "infer_json_in_binary_out",
    "infer_binary_in_json_out",
    "infer_fp32_binary",
    "infer_fp32_json",
    "infer_per_feature_json",
    "infer_per_feature_binary",
    "infer_version",
    "infer_request_id",
    "infer_bearer",
]


@pytest.mark.parametrize("call", TRITON_HTTP_INFERS)
def test_tritonclient_http_infer(triton_http, expected, call: str):
    result = value(triton_http, call)
    assert_answers(result, expected, call)
    assert result["response"]["model_name"] == "iris"
    assert result["response"].get("model_version") in ("1", None), result["response"]


def test_tritonclient_http_and_grpc_echo_the_request_id(triton_http, triton_grpc):
    assert value(triton_http, "infer_request_id")["response"].get("id") == "req-42"
    assert value(triton_grpc, "infer_request_id")["response"].get("id") == "req-42"


def test_tritonclient_http_binary_outputs_are_binary(triton_http):
    """Asked for binary outputs (the client's default), the gateway sends them binary."""
    for call in ("infer_binary", "infer_binary_named_outputs", "infer_json_in_binary_out"):
        meta = value(triton_http, call)["outputs_meta"]
        for output in ("predict", "predict_proba"):
            assert "binary_data_size" in (meta[output].get("parameters") or {}), (call, meta)
    for call in ("infer_json", "infer_binary_in_json_out"):
        meta = value(triton_http, call)["outputs_meta"]
        for output in ("predict", "predict_proba"):
            assert "binary_data_size" not in (meta[output].get("parameters") or {}), (call, meta)


def test_tritonclient_http_server_and_model_calls(triton_http):
    assert value(triton_http, "is_server_live") is True
    assert value(triton_http, "is_server_ready") is True
    assert value(triton_http, "is_model_ready") is True
    assert value(triton_http, "is_model_ready_version") is True
    assert value(triton_http, "is_model_ready_unknown") is False
    server = value(triton_http, "get_server_metadata")
    assert server.get("name") and "version" in server and "extensions" in server, server
    for call in ("get_model_metadata", "get_model_metadata_version"):
        metadata = value(triton_http, call)
        assert metadata["name"] == "iris", metadata
        assert "1" in metadata.get("versions", ["1"]), metadata
        assert {o["name"] for o in metadata["outputs"]} >= {"predict", "predict_proba"}
        assert metadata["inputs"], metadata
    index = value(triton_http, "get_model_repository_index")
    assert any(entry.get("name") == "iris" for entry in index), index


@pytest.mark.parametrize(
    "call",
    [
        "infer_wrong_key",
        "infer_wrong_bearer",
        "infer_no_key",
        "get_model_metadata_wrong_key",
    ],
)
def test_tritonclient_http_refuses_a_wrong_key(triton_http, call: str):
    error = failure(triton_http, call)
    assert error["error"] == "InferenceServerException", error
    assert error["status"] == "401", error
    # The client decoded the error body ({"error": "..."}), not "an exception occurred...".
    assert "exception occurred in the client" not in error["message"], error


def test_tritonclient_http_unknown_model(triton_http):
    error = failure(triton_http, "infer_unknown_model")
    assert error["error"] == "InferenceServerException", error
    assert error["status"] in ("400", "404"), error
    assert "exception occurred in the client" not in error["message"], error


TRITON_GRPC_INFERS = [
    "infer",
    "infer_no_outputs_named",
    "infer_fp32",
    "infer_per_feature",
    "infer_version",
    "infer_request_id",
    "infer_bearer",
]


@pytest.mark.parametrize("call", TRITON_GRPC_INFERS)
def test_tritonclient_grpc_infer(triton_grpc, expected, call: str):
    result = value(triton_grpc, call)
    assert_answers(result, expected, call)
    assert result["response"]["model_name"] == "iris"


def test_tritonclient_grpc_server_and_model_calls(triton_grpc):
    assert value(triton_grpc, "is_server_live") is True
    assert value(triton_grpc, "is_server_ready") is True
    assert value(triton_grpc, "is_model_ready") is True
    assert value(triton_grpc, "is_model_ready_version") is True
    assert value(triton_grpc, "get_server_metadata").get("name"), triton_grpc
    for call in ("get_model_metadata", "get_model_metadata_version"):
        metadata = value(triton_grpc, call)
        assert metadata["name"] == "iris", metadata
        assert "1" in metadata.get("versions", ["1"]), metadata
        assert {o["name"] for o in metadata["outputs"]} >= {"predict", "predict_proba"}


@pytest.mark.parametrize(
    "call", ["infer_wrong_key", "infer_no_key", "get_model_metadata_wrong_key"]
)
def test_tritonclient_grpc_refuses_a_wrong_key(triton_grpc, call: str):
    error = failure(triton_grpc, call)
    assert error["error"] == "InferenceServerException", error
    assert error["status"] == "StatusCode.UNAUTHENTICATED", error


def test_tritonclient_grpc_unknown_model(triton_grpc):
    error = failure(triton_grpc, "infer_unknown_model")
    assert error["status"] in ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT"), error


KSERVE_INFERS = [
    "rest_infer_json",
    "rest_infer_json_no_outputs_named",
    "rest_infer_binary",
    "rest_infer_binary_in_json_out",
    "rest_infer_binary_output_parameter",
    "rest_infer_fp32_json",
    "rest_infer_per_feature_json",
    "rest_infer_per_feature_binary",
    "rest_infer_dict_nested_data",
    "rest_infer_bearer",
    "grpc_infer",
    "grpc_infer_no_outputs_named",
    "grpc_infer_contents",
    "grpc_infer_per_feature",
    "grpc_infer_version",
    "grpc_infer_bearer",
]


@pytest.mark.parametrize("call", KSERVE_INFERS)
def test_kserve_infer(kserve, expected, call: str):
    result = value(kserve, call)
    assert_answers(result, expected, call)
    assert result["response"]["model_name"] == "iris"


def test_kserve_binary_outputs_are_binary(kserve):
    """Asked for binary outputs, the answer is a JSON header and the tensors' bytes (the client
    drops `binary_data_size` once read, so its answer's headers tell)."""
    for call in ("rest_infer_binary", "rest_infer_binary_output_parameter"):
        answered = value(kserve, call)["response_headers"]
        assert "inference-header-content-length" in answered, (call, answered)
    for call in ("rest_infer_json", "rest_infer_binary_in_json_out"):
        answered = value(kserve, call)["response_headers"]
        assert "inference-header-content-length" not in answered, (call, answered)
        assert answered["content-type"].startswith("application/json"), (call, answered)


def test_kserve_server_and_model_calls(kserve):
    for call in ("rest_is_server_live", "rest_is_server_ready", "rest_is_model_ready"):
        assert value(kserve, call) is True, call
    assert value(kserve, "rest_is_model_ready_unknown") is False
    for call in ("grpc_is_server_live", "grpc_is_server_ready", "grpc_is_model_ready"):
        assert value(kserve, call) is True, call


@pytest.mark.parametrize(
    "call", ["rest_infer_wrong_key", "rest_infer_wrong_bearer", "rest_infer_no_key"]
)
def test_kserve_rest_refuses_a_wrong_key(kserve, call: str):
    error = failure(kserve, call)
    assert error["error"] == "HTTPStatusError" and error["status"] == 401, error


def test_kserve_rest_unknown_model(kserve):
    error = failure(kserve, "rest_infer_unknown_model")
    assert error["error"] == "HTTPStatusError" and error["status"] in (400, 404), error


def test_kserve_grpc_refuses_a_wrong_key(kserve):
    error = failure(kserve, "grpc_infer_wrong_key")
    assert error["status"] == "StatusCode.UNAUTHENTICATED", error


def test_the_gateway_kept_serving(served, expected, triton_http, triton_grpc, kserve):
    """After every client's calls (the refused ones included) the gateway answers as before."""
    gateway, _ = served
    assert gateway.proc is not None and gateway.proc.poll() is None, gateway.log_tail()
    assert gateway.http.get("/healthz").status_code == 200
    again = gateway.http.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert again.status_code == 200, again.text
    assert again.json()["predictions"] == expected["predictions"]
    live = gateway.http.get("/v2/health/live")
    assert live.status_code == 200 and live.json() == {"live": True}, live.text
