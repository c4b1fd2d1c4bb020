"""Open Inference Protocol V2 outputs: the tensors of an answer, and model metadata.

Shared by the REST adapter (`v2.py`, `v2_bodies.py`) and the gRPC one (`grpc_v2.py`,
`grpc_messages.py`). Every version gives `predict` and, for classifiers, `predict_proba`;
the datatype of `predict` is one per version, from its classes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from gateway.protocols.v2_tensors import FIXED
from kernel.errors import InvalidInput
from registry.model import LoadedModel
from runtime.base import Prediction

#: Outputs every version can give; `predict_proba` only classifiers with probabilities.
PREDICT, PROBA = "predict", "predict_proba"
INT64_LOW, INT64_HIGH = -(2**63), 2**63 - 1
#: MLflow column types as V2 datatypes, for metadata.
DATATYPE_OF_TYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}


class TensorOut(NamedTuple):
    """One output tensor: `data` is flat, in row-major order."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


def output_names(model: LoadedModel) -> list[str]:
    """What the version can return: `predict`, and `predict_proba` for classifiers."""
    return [PREDICT, PROBA] if model.has_probabilities else [PREDICT]


def predict_datatype(model: LoadedModel) -> str:
    """One datatype per version, from its classes: INT64 for integer classes (within int64),
    FP64 for float classes, BOOL for booleans, BYTES for any other (strings); FP64 for a model
    without classes (a regressor's values; a pyfunc's answers that are not numbers are sent
    as BYTES, see `predict_tensor`)."""
    classes = model.classes
    if classes is None:
        return "FP64"
    if classes and all(type(c) is bool for c in classes):
        return "BOOL"
    if classes and all(type(c) is int and INT64_LOW <= c <= INT64_HIGH for c in classes):
        return "INT64"
    if classes and all(type(c) is float for c in classes):
        return "FP64"
    return "BYTES"


def predict_tensor(model: LoadedModel, labels: list[Any]) -> TensorOut:
    datatype = predict_datatype(model)
    if datatype == "FP64" and not all(type(v) is float or type(v) is int for v in labels):
        datatype = "BYTES"  # a pyfunc's labels: not numbers after all
    data = labels if datatype != "BYTES" else [v if type(v) is str else str(v) for v in labels]
    return TensorOut(PREDICT, datatype, [len(labels)], data)


def output_tensors(
    model: LoadedModel, prediction: Prediction, wanted: Sequence[str] | None
) -> list[TensorOut]:
    """The output tensors asked for (all by default); an unknown name is refused."""
    names = output_names(model)
    if wanted is not None:
        if any(n not in names for n in wanted):
            raise InvalidInput(
                f"an unknown output is asked for; this version gives: {', '.join(names)}"
            )
        names = [n for n in names if n in wanted]
    labels = prediction.labels
    out = []
    for name in names:
        if name == PREDICT:
            out.append(predict_tensor(model, labels))
        else:
            proba = prediction.probabilities or []
            width = len(proba[0]) if proba else len(model.classes or ())
            flat = [p for row in proba for p in row]
            out.append(TensorOut(PROBA, "FP64", [len(proba), width], flat))
    return out


def raw_bytes(tensor: TensorOut) -> bytes:
    """The tensor in the binary layout (little-endian; BYTES length-prefixed)."""
    if tensor.datatype == "BYTES":
        parts = []
        for value in tensor.data:
            encoded = str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    return np.asarray(tensor.data, dtype=FIXED[tensor.datatype]).tobytes()


def model_metadata(model: LoadedModel, versions: Sequence[int]) -> dict[str, Any]:
    """Model metadata: name, versions, platform, inputs and outputs with shapes (-1: batch)."""
    signature = model.signature
    if signature.all_numeric:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(signature.names)]}]
    else:
        inputs = [
            {"name": f.name, "datatype": DATATYPE_OF_TYPE.get(f.type, "FP64"), "shape": [-1]}
            for f in signature.features
        ]
    outputs: list[dict[str, Any]] = [
        {"name": PREDICT, "datatype": predict_datatype(model), "shape": [-1]}
    ]
    if model.has_probabilities:
        width = len(model.classes or ())
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": model.flavor,
        "inputs": inputs,
        "outputs": outputs,
    }
