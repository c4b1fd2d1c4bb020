"""The pure mapping of the V2 gRPC adapter: statuses, trailers, metadata, tensors both ways."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from gateway.http.errors import STATUS_BY_CODE
from gateway.protocols.grpc_messages import (
    CONTENTS_FIELD,
    GRPC_STATUS_BY_HTTP,
    content_type_of,
    error_trailers,
    headers_of,
    infer_response,
    metadata_response,
    request_id_of,
    status_of,
    tensors_in,
)
from gateway.protocols.grpc_v2 import parse_model_version
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_outputs import TensorOut
from gateway.protocols.v2_tensors import FIXED, rows_of
from kernel.errors import InvalidInput, VersionNotFound

Tensor = pb.ModelInferRequest.InferInputTensor


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_json", grpc.StatusCode.INVALID_ARGUMENT),
        ("invalid_input", grpc.StatusCode.INVALID_ARGUMENT),
        ("too_many_rows", grpc.StatusCode.INVALID_ARGUMENT),
        ("unauthorized", grpc.StatusCode.UNAUTHENTICATED),
        ("forbidden", grpc.StatusCode.PERMISSION_DENIED),
        ("model_not_found", grpc.StatusCode.NOT_FOUND),
        ("version_not_found", grpc.StatusCode.NOT_FOUND),
        ("rate_limited", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("model_unavailable", grpc.StatusCode.UNAVAILABLE),
        ("overloaded", grpc.StatusCode.UNAVAILABLE),
        ("predict_timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("job_not_finished", grpc.StatusCode.INTERNAL),  # 409: no call of this service
        ("internal", grpc.StatusCode.INTERNAL),
        ("never-heard-of", grpc.StatusCode.INTERNAL),
    ],
)
def test_codes_map_through_their_http_status(code: str, status: grpc.StatusCode) -> None:
    assert status_of(code) == status


def test_every_status_of_the_table_that_a_call_can_meet_has_a_grpc_status() -> None:
    assert {400, 401, 403, 404, 413, 422, 429, 503, 504} <= set(STATUS_BY_CODE.values())
    assert set(GRPC_STATUS_BY_HTTP) == {400, 401, 403, 404, 413, 422, 429, 503, 504}


def test_retry_after_where_http_sends_it() -> None:
    assert error_trailers("rate_limited", {"Retry-After": "7", "RateLimit": "x"}) == [
        ("retry-after", "7")
    ]
    assert error_trailers("overloaded", None) == [("retry-after", "1")]
    assert error_trailers("model_unavailable", None) == []  # lasting: a retry cannot help
    assert error_trailers("invalid_input", None) == []


def test_metadata_becomes_headers_and_request_ids_are_kept_when_sane() -> None:
    headers = headers_of(
        [("X-API-Key", "k1"), ("trace-bin", b"\x00\xff"), ("x-request-id", "abc-1"), ("x", "é")]
    )
    assert headers["x-api-key"] == "k1" and "trace-bin" not in headers and "x" not in headers
    assert request_id_of(headers) == "abc-1"
    assert len(request_id_of(headers_of([("x-request-id", "no spaces allowed")]))) == 32
    assert len(request_id_of(headers_of(None))) == 32


def test_content_type_must_be_a_string_parameter() -> None:
    request = pb.ModelInferRequest()
    assert content_type_of(request.parameters) is None
    request.parameters["content_type"].string_param = "pd"
    assert content_type_of(request.parameters) == "pd"
    request.parameters["content_type"].bool_param = True
    with pytest.raises(InvalidInput, match="must be a string"):
        content_type_of(request.parameters)


def test_typed_contents_become_rows() -> None:
    request = pb.ModelInferRequest(
        inputs=[
            Tensor(
                name="input-0",
                datatype="FP64",
                shape=[2, 2],
                contents=pb.InferTensorContents(fp64_contents=[1.5, 2.0, 3.0, 4.25]),
            )
        ]
    )
    tensors, raw = tensors_in(request)
    assert raw is False
    assert rows_of(tensors, None, 10) == ("instances", [[1.5, 2.0], [3.0, 4.25]])


def test_columns_of_each_typed_field_become_records() -> None:
    request = pb.ModelInferRequest(
        inputs=[
            Tensor(
                name="n",
                datatype="INT32",
                shape=[2],
                contents=pb.InferTensorContents(int_contents=[1, 2]),
            ),
            Tensor(
                name="b",
                datatype="BOOL",
                shape=[2],
                contents=pb.InferTensorContents(bool_contents=[True, False]),
            ),
            Tensor(
                name="s",
                datatype="BYTES",
                shape=[2, 1],
                contents=pb.InferTensorContents(bytes_contents=["é".encode(), b"x"]),
            ),
        ]
    )
    tensors, _ = tensors_in(request)
    assert rows_of(tensors, "pd", 10) == (
        "records",
        [{"n": 1, "b": True, "s": "é"}, {"n": 2, "b": False, "s": "x"}],
    )


def test_raw_contents_become_rows() -> None:
    values = np.asarray([[1.5, 2.0], [3.0, 4.0]], dtype="<f4")
    request = pb.ModelInferRequest(
        inputs=[Tensor(name="x", datatype="FP32", shape=[2, 2])],
        raw_input_contents=[values.tobytes()],
    )
    tensors, raw = tensors_in(request)
    assert raw is True and tensors[0].raw == values.tobytes()
    assert rows_of(tensors, None, 10) == ("instances", values.tolist())


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            pb.ModelInferRequest(
                inputs=[Tensor(name="x", datatype="FP64", shape=[1])], raw_input_contents=[b"", b""]
            ),
            "one entry per input",
        ),
        (
            pb.ModelInferRequest(
                inputs=[
                    Tensor(
                        name="x",
                        datatype="FP64",
                        shape=[1],
                        contents=pb.InferTensorContents(fp64_contents=[1.0]),
                    )
                ],
                raw_input_contents=[b"\0" * 8],
            ),
            "not both",
        ),
        (
            pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP16", shape=[1])]),
            "FP16 travels",
        ),
        (
            pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="COMPLEX", shape=[1])]),
            "unknown datatype",
        ),
        (
            pb.ModelInferRequest(
                inputs=[
                    Tensor(
                        name="x",
                        datatype="FP64",
                        shape=[1],
                        contents=pb.InferTensorContents(fp32_contents=[7.77]),
                    )
                ]
            ),
            "takes 'fp64_contents' only",
        ),
        (
            pb.ModelInferRequest(
                inputs=[
                    Tensor(
                        name="x",
                        datatype="FP64",
                        shape=[1],
                        contents=pb.InferTensorContents(fp64_contents=[float("inf")]),
                    )
                ]
            ),
            "infinity",
        ),
        (
            pb.ModelInferRequest(
                inputs=[
                    Tensor(
                        name="x",
                        datatype="BYTES",
                        shape=[1],
                        contents=pb.InferTensorContents(bytes_contents=[b"\xff\xfe"]),
                    )
                ]
            ),
            "not UTF-8",
        ),
    ],
)
def test_inputs_refused_without_echoing_values(
    request_: pb.ModelInferRequest, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        # The tensors as the servicer reads them: their values, then their rows.
        rows_of(tensors_in(request_)[0], None, 1000)
    assert "7.77" not in caught.value.message


def test_every_typed_field_is_a_field_of_the_contents() -> None:
    fields = {f.name for f in pb.InferTensorContents.DESCRIPTOR.fields}
    assert set(CONTENTS_FIELD.values()) == fields
    assert set(CONTENTS_FIELD) == (set(FIXED) - {"FP16"}) | {"BYTES"}


OUTPUTS = [
    TensorOut("predict", "INT64", [2], [0, 2]),
    TensorOut("predict_proba", "FP64", [2, 2], [0.25, 0.75, 1.0, 0.0]),
    TensorOut("words", "BYTES", [2], ["setosa", "é"]),
    TensorOut("flags", "BOOL", [2], [True, False]),
]


def test_typed_answers_fill_the_contents_of_each_datatype() -> None:
    request = pb.ModelInferRequest(id="r-1")
    response = infer_response(request, "iris", 3, OUTPUTS, raw=False)
    assert (response.model_name, response.model_version, response.id) == ("iris", "3", "r-1")
    predict, proba, words, flags = response.outputs
    assert list(predict.contents.int64_contents) == [0, 2] and list(predict.shape) == [2]
    assert list(proba.contents.fp64_contents) == [0.25, 0.75, 1.0, 0.0]
    assert list(words.contents.bytes_contents) == [b"setosa", "é".encode()]
    assert list(flags.contents.bool_contents) == [True, False]
    assert not response.raw_output_contents


def test_raw_answers_fill_raw_output_contents_in_order() -> None:
    response = infer_response(pb.ModelInferRequest(), "iris", 1, OUTPUTS, raw=True)
    assert all(not o.HasField("contents") for o in response.outputs)
    predict, proba, words, flags = response.raw_output_contents
    assert np.frombuffer(predict, "<i8").tolist() == [0, 2]
    assert np.frombuffer(proba, "<f8").tolist() == [0.25, 0.75, 1.0, 0.0]
    assert words == b"\x06\x00\x00\x00setosa\x02\x00\x00\x00" + "é".encode()
    assert np.frombuffer(flags, "?").tolist() == [True, False]


def test_model_metadata_as_a_message() -> None:
    message = metadata_response(
        {
            "name": "iris",
            "versions": ["1", "2"],
            "platform": "sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
        }
    )
    assert message.name == "iris" and list(message.versions) == ["1", "2"]
    assert list(message.inputs[0].shape) == [-1, 4] and message.outputs[0].datatype == "INT64"


def test_model_version_follows_v1s_rules() -> None:
    assert parse_model_version("") is None
    assert parse_model_version("12") == 12
    for bad in ("abc", "0", "-1", "1.5", "٣"):
        with pytest.raises(InvalidInput):
            parse_model_version(bad)
    with pytest.raises(VersionNotFound):
        parse_model_version("99999999999")
