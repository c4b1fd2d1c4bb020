"""The Open Inference Protocol V2 over gRPC, against a real gateway (MODELGATE_GRPC_PORT) with
a plain grpcio client and the committed stubs: answers equal /v1's for the same rows (typed
and raw contents), every refusal's status, pinned versions, metadata, the message size limit,
the health service through a drain, and the event loop the calls run on.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.processes import Gateway, MlflowServer, Service, free_port, wait_until
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from registry.client import Registry
from registry.model import LoadedModel
from registry.train import FEATURES, TrainOptions, train_and_register
from tests.integration.conftest import V2_OPTIONS, GatewayFactory, known, make_key
from tests.integration.test_nginx import main_config

pytestmark = pytest.mark.integration

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.9, 5.6, 1.8]]
MAX_ROWS = 20
MAX_BODY_BYTES = 65536
TAMPERED = "grpc_tampered"
SERVICE = "inference.GRPCInferenceService"
REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Served(NamedTuple):
    gateway: Gateway
    port: int
    stub: GRPCInferenceServiceStub
    health: health_pb2_grpc.HealthStub
    key: tuple[tuple[str, str], ...]


def _artifact_dir(server: MlflowServer, registry: Registry, name: str, version: int) -> Path:
    uri = registry.download_uri(name, version)  # mlflow-artifacts:/<experiment>/.../artifacts
    return server.artifacts / uri.removeprefix("mlflow-artifacts:/")


@pytest.fixture(scope="module")
def tampered(registry: Registry, mlflow_server: MlflowServer) -> None:
    """A model whose version 1 serves and whose version 2's artifact no longer matches its
    recorded SHA-256: pinned, it cannot load (a lasting refusal)."""
    train_and_register(registry, TrainOptions(n_estimators=5), name=TAMPERED)
    train_and_register(registry, V2_OPTIONS, name=TAMPERED)
    registry.set_alias(TAMPERED, "production", 1)
    skops_file = _artifact_dir(mlflow_server, registry, TAMPERED, 2) / "model.skops"
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")


def _connect(gateway: Gateway, port: int) -> Iterator[Served]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(
            gateway,
            port,
            GRPCInferenceServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            (("x-api-key", gateway.api_key or ""),),
        )
    finally:
        channel.close()


@pytest.fixture(scope="module")
def served(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel], tampered: None
) -> Iterator[Served]:
    port = free_port()
    gateway = gateway_factory(
        grpc_port=str(port),
        models=f"iris@production,{TAMPERED}@production",
        max_sync_rows=str(MAX_ROWS),
        max_body_bytes=str(MAX_BODY_BYTES),
    )
    yield from _connect(gateway, port)


def fp64_input(rows: list[list[float]]) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(
        name="input-0",
        datatype="FP64",
        shape=[len(rows), len(rows[0])],
        contents=pb.InferTensorContents(fp64_contents=[v for row in rows for v in row]),
    )


def infer_request(rows: list[list[float]] = ROWS, **fields: Any) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="iris", inputs=[fp64_input(rows)], **fields)


def v1(gateway: Gateway, rows: list[list[float]], version: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"instances": rows}
    if version is not None:
        body["version"] = version
    response = gateway.http.post("/v1/models/iris/predict", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refusal(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert dict(error.trailing_metadata() or ())["x-request-id"]
    return error


def still_serves(served: Served) -> None:
    response = served.stub.ModelInfer(infer_request(), metadata=served.key)
    assert len(response.outputs[0].contents.int64_contents) == len(ROWS)


def outputs(response: pb.ModelInferResponse) -> dict[str, pb.ModelInferResponse.InferOutputTensor]:
    return {o.name: o for o in response.outputs}


# --- probes, metadata ---------------------------------------------------------------------


def test_server_probes_need_no_key_and_answer_with_a_request_id(served: Served) -> None:
    live, call = served.stub.ServerLive.with_call(pb.ServerLiveRequest())
    assert live.live is True and dict(call.initial_metadata())["x-request-id"]
    assert served.stub.ServerReady(pb.ServerReadyRequest()).ready is True
    metadata = served.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert metadata.name == "modelgate" and metadata.version
    _, call = served.stub.ServerLive.with_call(
        pb.ServerLiveRequest(), metadata=(("x-request-id", "mine-1"),)
    )
    assert dict(call.initial_metadata())["x-request-id"] == "mine-1"


def test_model_metadata_and_readiness_need_a_key(served: Served) -> None:
    metadata, call = served.stub.ModelMetadata.with_call(
        pb.ModelMetadataRequest(name="iris"), metadata=served.key
    )
    assert metadata.name == "iris" and metadata.platform == "sklearn" and "1" in metadata.versions
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("input-0", "FP64", [-1, 4])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("predict", "INT64", [-1]),
        ("predict_proba", "FP64", [-1, 3]),
    ]
    assert dict(call.initial_metadata())["x-model-version"] == "1"
    ready = served.stub.ModelReady(pb.ModelReadyRequest(name="iris"), metadata=served.key)
    assert ready.ready is True
    for request in (pb.ModelMetadataRequest(name="iris"), pb.ModelReadyRequest(name="iris")):
        method = (
            served.stub.ModelMetadata
            if isinstance(request, pb.ModelMetadataRequest)
            else served.stub.ModelReady
        )
        assert refusal(method, request).code() == grpc.StatusCode.UNAUTHENTICATED
    unknown = refusal(
        served.stub.ModelReady, pb.ModelReadyRequest(name="nope"), metadata=served.key
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


# --- inference ----------------------------------------------------------------------------


def test_typed_contents_answer_as_v1(served: Served) -> None:
    expected = v1(served.gateway, ROWS)
    response, call = served.stub.ModelInfer.with_call(
        infer_request(id="req-7"), metadata=(*served.key, ("x-request-id", "grpc-typed-1"))
    )
    assert response.model_name == "iris" and response.id == "req-7"
    assert response.model_version == str(expected["version"])
    got = outputs(response)
    assert list(got["predict"].contents.int64_contents) == expected["predictions"]
    assert got["predict"].datatype == "INT64" and list(got["predict"].shape) == [len(ROWS)]
    proba = np.asarray(got["predict_proba"].contents.fp64_contents).reshape(len(ROWS), 3)
    assert np.allclose(proba, expected["probabilities"])
    assert not response.raw_output_contents
    initial = dict(call.initial_metadata())
    assert initial["x-model-version"] == str(expected["version"])
    assert initial["x-request-id"] == "grpc-typed-1"
    assert "ratelimit" in initial


def test_raw_contents_answer_raw(served: Served) -> None:
    expected = v1(served.gateway, ROWS)
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[4, 4])],
        raw_input_contents=[np.asarray(ROWS, dtype="<f8").tobytes()],
    )
    response = served.stub.ModelInfer(request, metadata=served.key)
    names = [o.name for o in response.outputs]
    assert names == ["predict", "predict_proba"]
    assert all(not o.HasField("contents") for o in response.outputs)
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist()
    proba = np.frombuffer(response.raw_output_contents[1], dtype="<f8").reshape(len(ROWS), 3)
    assert labels == expected["predictions"] and np.allclose(proba, expected["probabilities"])
    # FP32 raw, as most V2 clients send numpy float32 arrays.
    request.inputs[0].datatype = "FP32"
    request.raw_input_contents[0] = np.asarray(ROWS, dtype="<f4").tobytes()
    response = served.stub.ModelInfer(request, metadata=served.key)
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == labels


def test_one_tensor_per_feature_with_the_pd_content_type(served: Served) -> None:
    expected = v1(served.gateway, ROWS)
    columns = [
        pb.ModelInferRequest.InferInputTensor(
            name=name,
            datatype="FP64",
            shape=[len(ROWS)],
            contents=pb.InferTensorContents(fp64_contents=[row[i] for row in ROWS]),
        )
        for i, name in enumerate(FEATURES)
    ]
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=columns,
        parameters={"content_type": pb.InferParameter(string_param="pd")},
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")],
    )
    response = served.stub.ModelInfer(
        request, metadata=(("authorization", "Bearer " + served.key[0][1]),)
    )
    assert [o.name for o in response.outputs] == ["predict"]
    assert list(response.outputs[0].contents.int64_contents) == expected["predictions"]


def test_a_pinned_version_follows_v1s_rules(served: Served) -> None:
    expected = v1(served.gateway, ROWS, version=2)
    response, call = served.stub.ModelInfer.with_call(
        infer_request(model_version="2"), metadata=served.key
    )
    assert response.model_version == "2" and dict(call.initial_metadata())["x-model-version"] == "2"
    assert list(outputs(response)["predict"].contents.int64_contents) == expected["predictions"]
    for version, code in (
        ("99", grpc.StatusCode.NOT_FOUND),
        ("99999999999", grpc.StatusCode.NOT_FOUND),
        ("abc", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        error = refusal(
            served.stub.ModelInfer, infer_request(model_version=version), metadata=served.key
        )
        assert error.code() == code, version
    # A version that cannot load here: UNAVAILABLE with the reason, no retry-after.
    tampered = pb.ModelInferRequest(
        model_name=TAMPERED, model_version="2", inputs=[fp64_input(ROWS)]
    )
    error = refusal(served.stub.ModelInfer, tampered, metadata=served.key)
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "SHA-256" in error.details()
    assert "retry-after" not in dict(error.trailing_metadata())
    tampered.model_version = ""
    assert served.stub.ModelInfer(tampered, metadata=served.key).model_version == "1"
    still_serves(served)


# --- refusals -----------------------------------------------------------------------------

#: A value no message may echo.
SECRET = 1234.5678


def _bad(**change: Any) -> pb.ModelInferRequest:
    request = infer_request([[SECRET, 3.5, 1.4, 0.2]])
    tensor = request.inputs[0]
    for field, value in change.items():
        if field == "shape":
            del tensor.shape[:]
            tensor.shape.extend(value)
        elif field == "datatype":
            tensor.datatype = value
        elif field == "raw":
            request.raw_input_contents.append(value)
        elif field == "int64":
            tensor.contents.int64_contents.extend(value)
        elif field == "outputs":
            request.outputs.add(name=value)
        elif field == "content_type":
            request.parameters["content_type"].int64_param = value
    return request


BAD = [
    ("a wrong shape", _bad(shape=[1, 3])),
    ("three dimensions", _bad(shape=[1, 1, 4])),
    ("a negative size", _bad(shape=[-1, 4])),
    ("an unknown datatype", _bad(datatype="FP128")),
    ("FP16 as contents", _bad(datatype="FP16")),
    ("a wrong contents field", _bad(datatype="INT64")),
    ("two contents fields", _bad(int64=[1])),
    ("raw and contents", _bad(raw=b"\0" * 32)),
    ("an unknown output", _bad(outputs="logits")),
    ("a content type that is no string", _bad(content_type=3)),
    ("too many rows", _bad(shape=[MAX_ROWS + 1, 4])),
    ("no inputs", pb.ModelInferRequest(model_name="iris")),
    (
        "a raw count",
        pb.ModelInferRequest(
            model_name="iris",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1, 4])],
            raw_input_contents=[b"\0" * 32, b"\0" * 32],
        ),
    ),
    (
        "raw bytes of the wrong length",
        pb.ModelInferRequest(
            model_name="iris",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1, 4])],
            raw_input_contents=[b"\0" * 31],
        ),
    ),
    (
        "infinity",
        pb.ModelInferRequest(
            model_name="iris",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="x",
                    datatype="FP64",
                    shape=[1, 4],
                    contents=pb.InferTensorContents(fp64_contents=[float("inf"), 1, 2, 3]),
                )
            ],
        ),
    ),
]


@pytest.mark.parametrize(("what", "request_"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_are_invalid_arguments(served: Served, what: str, request_: Any) -> None:
    error = refusal(served.stub.ModelInfer, request_, metadata=served.key)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, error.details())
    assert str(SECRET) not in error.details() and "1234" not in error.details()
    if what == "too many rows":
        assert f"synchronous limit of {MAX_ROWS}" in error.details()
    still_serves(served)


def test_keys_scopes_and_unknown_models(served: Served, redis_durable: Any) -> None:
    request = infer_request()
    for metadata in ((), (("x-api-key", "wrong"),), (("authorization", "Bearer wrong"),)):
        error = refusal(served.stub.ModelInfer, request, metadata=metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "wrong" not in error.details()
    jobs_only = make_key(redis_durable.url, scopes=["jobs"])
    known(served.gateway, jobs_only)
    error = refusal(served.stub.ModelInfer, request, metadata=(("x-api-key", jobs_only),))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    unknown = pb.ModelInferRequest(model_name="nope", inputs=[fp64_input(ROWS)])
    assert refusal(served.stub.ModelInfer, unknown, metadata=served.key).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    unimplemented = refusal(
        served.stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="iris")
    )
    assert unimplemented.code() == grpc.StatusCode.UNIMPLEMENTED
    still_serves(served)


def test_rate_limits_answer_resource_exhausted_with_retry_after(
    served: Served, redis_durable: Any
) -> None:
    limited = make_key(redis_durable.url, predict_limit="2/minute", reads_limit="2/minute")
    known(served.gateway, limited)
    key = (("x-api-key", limited),)
    for _ in range(2):
        served.stub.ModelInfer(infer_request(), metadata=key)
    error = refusal(served.stub.ModelInfer, infer_request(), metadata=key)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(error.trailing_metadata())["retry-after"]) >= 1
    # Reads are their own limit: `known` made one read, one metadata call, then refused.
    served.stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"), metadata=key)
    error = refusal(served.stub.ModelReady, pb.ModelReadyRequest(name="iris"), metadata=key)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_serves(served)


def test_a_message_over_the_body_limit_is_refused_by_grpc(served: Served) -> None:
    rows = MAX_BODY_BYTES // 32 + 16  # FP64 rows of 4 values: past the limit in bytes
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[rows, 4])],
        raw_input_contents=[b"\0" * (rows * 32)],
    )
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.ModelInfer(request, metadata=served.key)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_serves(served)


# --- health, loop, drain ------------------------------------------------------------------


def _health(served: Served, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return int(served.health.Check(request, timeout=2).status)


def test_health_is_serving_and_unknown_services_are_not_found(served: Served) -> None:
    for service in ("", SERVICE):
        assert _health(served, service) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        _health(served, "nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def _log_entries(gateway: Gateway, message: str) -> list[dict[str, Any]]:
    lines = gateway.log_path.read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in entries if e.get("message") == message]


def test_calls_run_on_the_event_loop_that_serves_http(served: Served) -> None:
    served.stub.ServerLive(pb.ServerLiveRequest())
    (started,) = _log_entries(served.gateway, "gRPC server started")
    (first,) = _log_entries(served.gateway, "first gRPC call")
    # The lifespan that started the server runs on uvicorn's loop, the one serving HTTP.
    assert started["loop"] == first["loop"] == "uvloop.Loop"
    assert first["loop_id"] == started["loop_id"] and first["same_loop_as_http"] is True


def test_nan_is_a_missing_value_as_v1s_null(served: Served) -> None:
    """A NaN in a float tensor is a missing value, as JSON null is on /v1: the forest takes
    missing values, so both answer the same."""
    row = [float("nan"), 3.0, 5.0, 2.0]
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=[1, 4], contents=pb.InferTensorContents(fp64_contents=row)
    )
    answer = served.stub.ModelInfer(
        pb.ModelInferRequest(model_name="iris", inputs=[tensor]), metadata=served.key
    )
    v1 = served.gateway.http.post(
        "/v1/models/iris/predict", json={"instances": [[None, 3.0, 5.0, 2.0]]}
    ).json()
    assert list(answer.outputs[0].contents.int64_contents) == v1["predictions"]


def test_health_goes_not_serving_on_sigterm_while_calls_are_still_served(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    port = free_port()
    gateway = gateway_factory(grpc_port=str(port), drain_seconds="2", graceful_shutdown_seconds="5")
    for served in _connect(gateway, port):
        # Health follows readiness within its poll (0.1 s), which a busy machine may stretch.
        wait_until(
            lambda s=served: _health(s, SERVICE) == health_pb2.HealthCheckResponse.SERVING,
            5.0,
            "SERVING",
            interval=0.05,
        )
        signalled = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        wait_until(
            lambda s=served: _health(s, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING,
            1.0,
            "NOT_SERVING",
            interval=0.05,
        )
        assert _health(served, "") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert time.monotonic() - signalled < 1.0
        # Draining: not ready, still answering.
        assert served.stub.ServerReady(pb.ServerReadyRequest()).ready is False
        still_serves(served)
        assert gateway.proc is not None
        assert gateway.proc.wait(15) == -signal.SIGTERM
    log = gateway.log_path.read_text()
    for phase in ("gRPC health is NOT_SERVING", "drain over", "gRPC server stopped"):
        assert phase in log, phase


# --- through nginx (compose/nginx/grpc.conf) ----------------------------------------------


def grpc_nginx_config(source: str, port: int, upstream: int) -> str:
    """compose's grpc.conf with only its listen address and upstream servers changed: one
    server, the test gateway's gRPC port, with the first server's parameters."""
    config, listens = re.subn(
        r"^(\s*listen\s+)\d+", rf"\g<1>127.0.0.1:{port}", source, flags=re.MULTILINE
    )
    assert listens == 1, "grpc.conf: expected one listen directive"
    servers = list(re.finditer(r"^(\s*server\s+)[\w.-]+:\d+([^;]*;)\n", config, re.MULTILINE))
    assert servers, "grpc.conf: expected upstream servers"
    first = servers[0]
    kept = f"{first.group(1)}127.0.0.1:{upstream}{first.group(2)}\n"
    return config[: first.start()] + kept + config[servers[-1].end() :]


@pytest.fixture
def nginx_port(tmp_path: Path, served: Served) -> Iterator[int]:
    port = free_port()
    server = tmp_path / "grpc.conf"
    source = (REPO / "compose" / "nginx" / "grpc.conf").read_text()
    server.write_text(grpc_nginx_config(source, port, served.port))
    main = tmp_path / "nginx.conf"
    main.write_text(main_config(tmp_path, server, connections=64))
    argv = [NGINX, "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")]
    nginx = Service("nginx", argv, tmp_path / "nginx.out")
    nginx.start()
    try:
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None, 15, "nginx"
        )
        yield port
    finally:
        nginx.stop()


def test_grpc_through_nginx(served: Served, nginx_port: int) -> None:
    direct = served.stub.ModelInfer(infer_request(), metadata=served.key)
    with grpc.insecure_channel(f"127.0.0.1:{nginx_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        response, call = stub.ModelInfer.with_call(
            infer_request(), metadata=(*served.key, ("x-request-id", "via-nginx-1"))
        )
        assert response.outputs == direct.outputs
        initial = dict(call.initial_metadata())
        assert initial["x-request-id"] == "via-nginx-1" and initial["x-model-version"] == "1"
        # A refusal keeps its status and trailers through nginx.
        error = refusal(stub.ModelInfer, infer_request(), metadata=(("x-api-key", "wrong"),))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2).status
        assert status == health_pb2.HealthCheckResponse.SERVING
