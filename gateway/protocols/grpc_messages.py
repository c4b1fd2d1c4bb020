"""Open Inference Protocol V2 over gRPC: protobuf messages to and from the shared V2 tensors,
status codes from Modelgate's error codes, keys and request ids from call metadata.

Pure functions over the generated messages (gateway/protocols/v2_grpc/); the servicer
(`grpc_v2.py`) calls them. Messages name a tensor or a field, never a value sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
from starlette.datastructures import Headers

from gateway.http.errors import NOT_RETRYABLE, RETRY_AFTER_SECONDS, STATUS_BY_CODE
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_outputs import TensorOut, raw_bytes
from gateway.protocols.v2_tensors import TensorIn
from kernel.errors import InvalidInput

#: The typed `InferTensorContents` field of each V2 datatype (FP16 travels raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

#: HTTP statuses of STATUS_BY_CODE (gateway/http/errors.py) as gRPC status codes; any other
#: status is INTERNAL.
GRPC_STATUS_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

#: An incoming `x-request-id` is kept when it looks like this (as the HTTP middleware does).
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def status_of(code: str) -> grpc.StatusCode:
    """The gRPC status of a ModelgateError code, through its HTTP status."""
    return GRPC_STATUS_BY_HTTP.get(STATUS_BY_CODE.get(code, 500), grpc.StatusCode.INTERNAL)


def error_trailers(code: str, headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Trailing metadata of a refusal: `retry-after` where HTTP would send `Retry-After` (a
    rate limit's own wait, or 1 s for a retryable 503)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    retry = lowered.get("retry-after")
    if retry is None and STATUS_BY_CODE.get(code) == 503 and code not in NOT_RETRYABLE:
        retry = str(RETRY_AFTER_SECONDS)
    return [("retry-after", retry)] if retry is not None else []


def headers_of(metadata: Iterable[tuple[str, Any]] | None) -> Headers:
    """Call metadata as starlette Headers (what the KeyRing reads); binary entries dropped."""
    raw = [
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in metadata or ()
        if isinstance(value, str) and not key.endswith("-bin") and value.isascii()
    ]
    return Headers(raw=raw)


def request_id_of(headers: Headers) -> str:
    incoming = headers.get("x-request-id")
    return incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def content_type_of(parameters: Mapping[str, pb.InferParameter]) -> str | None:
    """The request's `content_type` parameter (`np` or `pd`, checked by rows_of), if sent."""
    if "content_type" not in parameters:
        return None
    parameter = parameters["content_type"]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput("parameter 'content_type' must be a string")
    return str(parameter.string_param)


def tensors_in(request: pb.ModelInferRequest) -> tuple[list[TensorIn], bool]:
    """The inputs as TensorIn, and whether they came as `raw_input_contents`."""
    raw = list(request.raw_input_contents)
    inputs = list(request.inputs)
    if raw:
        if len(raw) != len(inputs):
            raise InvalidInput("'raw_input_contents' must hold one entry per input")
        if any(tensor.HasField("contents") for tensor in inputs):
            raise InvalidInput("give 'raw_input_contents' or each input's 'contents', not both")
        return [
            TensorIn(t.name, t.datatype, list(t.shape), raw=bytes(content))
            for t, content in zip(inputs, raw, strict=True)
        ], True
    typed = [TensorIn(t.name, t.datatype, list(t.shape), data=typed_values(t)) for t in inputs]
    return typed, False


def typed_values(tensor: pb.ModelInferRequest.InferInputTensor) -> list[Any]:
    """The values of the contents field that the tensor's datatype uses, as Python values."""
    name = tensor.name[:64]
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        if tensor.datatype == "FP16":
            raise InvalidInput(f"input '{name}': FP16 travels in 'raw_input_contents' only")
        raise InvalidInput(f"input '{name}': unknown datatype")
    contents = tensor.contents
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise InvalidInput(f"input '{name}': datatype {tensor.datatype} takes '{field}' only")
    values = list(getattr(contents, field))
    if tensor.datatype == "BYTES":
        try:
            return [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 text") from None
    return values  # NaN is a missing value, infinity refused: v2_tensors.flat_values


def infer_response(
    request: pb.ModelInferRequest,
    model_name: str,
    version: int,
    outputs: Sequence[TensorOut],
    raw: bool,
) -> pb.ModelInferResponse:
    """The answer: raw output contents when the request sent raw inputs, else typed contents."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=str(version), id=request.id
    )
    for tensor in outputs:
        out = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if raw:
            response.raw_output_contents.append(raw_bytes(tensor))
        elif tensor.datatype == "BYTES":
            out.contents.bytes_contents.extend(str(v).encode("utf-8") for v in tensor.data)
        else:
            getattr(out.contents, CONTENTS_FIELD[tensor.datatype]).extend(tensor.data)
    return response


def metadata_response(metadata: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """`model_metadata(...)` (v2_tensors.py) as the protobuf message."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=metadata["name"],
        versions=metadata["versions"],
        platform=metadata["platform"],
        inputs=[tensor(**t) for t in metadata["inputs"]],
        outputs=[tensor(**t) for t in metadata["outputs"]],
    )
