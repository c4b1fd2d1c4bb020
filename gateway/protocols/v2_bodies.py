"""Open Inference Protocol V2 REST bodies: JSON, or a JSON header followed by binary tensors.

The binary tensor extension (Triton's and KServe's clients use it by default): the request's
`Inference-Header-Content-Length` says how many bytes of the body are its JSON header; each
input with a `binary_data_size` parameter takes that many bytes of what follows, in order. An
answer is sent the same way when any output is asked for in binary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from gateway.http.payload import parse_json
from gateway.protocols.v2_outputs import TensorOut, raw_bytes
from gateway.protocols.v2_tensors import TensorIn
from kernel.errors import InvalidInput

#: Response header naming the JSON part of a binary answer (and of a binary request).
HEADER_LENGTH = "inference-header-content-length"


class InferRequest(NamedTuple):
    """A parsed infer request: its id, tensors, parameters and the outputs asked for."""

    id: str | None
    tensors: list[TensorIn]
    content_type: str | None
    #: Names of the outputs asked for, None for all; those asked for in binary, and those
    #: asked for in JSON (an output's own `binary_data` wins over `binary_data_output`).
    outputs: list[str] | None
    binary: frozenset[str]
    binary_default: bool
    json: frozenset[str] = frozenset()


def _parameters(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{where}parameters' must be an object")
    return value


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """The request in `body`; `header_length` is the binary extension's header, if sent."""
    blobs = b""
    if header_length is not None:
        if not header_length.isascii() or not header_length.isdigit() or len(header_length) > 19:
            raise InvalidInput(f"'{HEADER_LENGTH}' must be a byte count")
        split = int(header_length)
        if split > len(body):
            raise InvalidInput(f"'{HEADER_LENGTH}' is larger than the body")
        body, blobs = body[:split], body[split:]
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInput("'inputs' must be a list of tensors")
    tensors, used = _tensors(inputs, memoryview(blobs))
    if used != len(blobs):
        raise InvalidInput("the binary data is longer than the inputs' binary_data_size")
    params = _parameters(doc.get("parameters"), "")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    outputs, binary, json_only = _outputs(doc.get("outputs"))
    content_type = params.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise InvalidInput("parameter 'content_type' must be a string")
    return InferRequest(
        request_id,
        tensors,
        content_type,
        outputs,
        binary,
        params.get("binary_data_output") is True,
        json_only,
    )


def _tensors(inputs: list[Any], blobs: memoryview) -> tuple[list[TensorIn], int]:
    tensors = []
    at = 0
    for position, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInput(f"input {position}: expected an object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidInput(f"input {position}: 'name' and 'datatype' must be strings")
        size = _parameters(item.get("parameters"), f"inputs[{position}].").get("binary_data_size")
        if size is not None and "data" in item:
            raise InvalidInput(f"input '{name[:64]}': give 'data' or binary_data_size, not both")
        if size is None:
            if "data" not in item:
                raise InvalidInput(f"input '{name[:64]}': no 'data' and no binary_data_size")
            tensors.append(TensorIn(name, datatype, shape, data=item["data"]))
            continue
        if type(size) is not int or size < 0:
            raise InvalidInput(f"input '{name[:64]}': binary_data_size must be a byte count")
        if at + size > len(blobs):
            raise InvalidInput(f"input '{name[:64]}': binary_data_size runs past the body")
        tensors.append(TensorIn(name, datatype, shape, raw=bytes(blobs[at : at + size])))
        at += size
    return tensors, at


def _outputs(value: Any) -> tuple[list[str] | None, frozenset[str], frozenset[str]]:
    if value is None:
        return None, frozenset(), frozenset()
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list")
    names, binary, json_only = [], set(), set()
    for position, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"output {position}: expected an object with a 'name'")
        names.append(item["name"])
        wants = _parameters(item.get("parameters"), f"outputs[{position}].").get("binary_data")
        if wants is True:
            binary.add(item["name"])
        elif wants is False:
            json_only.add(item["name"])
    return names, frozenset(binary), frozenset(json_only)


def render_infer(
    request: InferRequest, model: str, version: int, tensors: Sequence[TensorOut]
) -> tuple[bytes, int | None]:
    """The answer's body, and the length of its JSON header when binary tensors follow."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor in tensors:
        out: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        binary = tensor.name in request.binary or (
            request.binary_default and tensor.name not in request.json
        )
        if binary:
            blob = raw_bytes(tensor)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = tensor.data
        outputs.append(out)
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = outputs
    header = orjson.dumps(answer)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
