"""Open Inference Protocol V2 tensors: rows from input tensors, output tensors from an answer.

Shared by the REST adapter (`v2.py`) and the gRPC one (`grpc_v2.py`): both hand over their
inputs as `TensorIn` (JSON `data`, gRPC typed `contents`, or raw little-endian bytes from the
binary extension or `raw_input_contents`) and render `TensorOut`.

Two input layouts are read, as MLServer and KServe's servers read them:
- one 2-D tensor `[N, n_features]`: positional rows in signature order (`np`);
- one 1-D tensor (or `[N, 1]`) per feature, named as the signature's columns (`pd`, MLServer's
  pandas codec), BYTES for string columns.
The request's `content_type` parameter (`np` or `pd`) picks one; without it, one tensor of two
dimensions is `np` and anything else `pd`. Messages name the tensor, never a value sent.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from kernel.errors import InvalidInput
from registry.model import LoadedModel
from runtime.base import Prediction

#: V2 datatypes of fixed width, as little-endian numpy dtypes.
FIXED = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
FLOATS = frozenset({"FP16", "FP32", "FP64"})
INTEGERS = frozenset(k for k in FIXED if "INT" in k)
INT64_LOW, INT64_HIGH = -(2**63), 2**63 - 1
#: The values each integer datatype holds.
INTEGER_RANGES = {
    k: (int(np.iinfo(FIXED[k]).min), int(np.iinfo(FIXED[k]).max)) for k in sorted(INTEGERS)
}
#: More features than any model takes (a bound on a client-declared width).
MAX_FEATURES = 100_000
DATATYPES = frozenset(FIXED) | {"BYTES"}
#: Outputs every version can give; `predict_proba` only classifiers with probabilities.
PREDICT, PROBA = "predict", "predict_proba"
#: MLflow column types as V2 datatypes, for metadata.
DATATYPE_OF_TYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}


class TensorIn(NamedTuple):
    """One input tensor as a protocol carried it: `data` (JSON, gRPC contents) or `raw`."""

    name: str
    datatype: str
    shape: Any  # checked by check_shape: a list of one or two sizes
    data: Any = None
    raw: bytes | None = None


class TensorOut(NamedTuple):
    """One output tensor: `data` is flat, in row-major order."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """The shape as integers: one or two non-negative sizes (rows_of checks the limits, by
    layout, before any memory is given to them)."""
    if not isinstance(shape, list | tuple) or not 1 <= len(shape) <= 2:
        raise InvalidInput(f"input '{name[:64]}': 'shape' must be a list of 1 or 2 sizes")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input '{name[:64]}': 'shape' must hold non-negative integers")
    return tuple(shape)


def check_limits(name: str, rows: int, width: int, max_rows: int) -> None:
    if rows > max_rows:
        raise InvalidInput(
            f"input '{name[:64]}': {rows} rows exceed the synchronous limit of {max_rows}; "
            "submit them as a batch job"
        )
    if width > MAX_FEATURES:
        raise InvalidInput(f"input '{name[:64]}': more features than any model takes")
    if width == 0:
        raise InvalidInput(f"input '{name[:64]}': a row must hold features")


def flat_values(tensor: TensorIn, shape: tuple[int, ...]) -> list[Any]:
    """The tensor's elements as a flat list of Python values, checked against its datatype and
    shape; a missing value (JSON null, NaN) of a float tensor is None, for the signature to
    take or refuse."""
    name = tensor.name[:64]
    if tensor.datatype not in DATATYPES:
        raise InvalidInput(f"input '{name}': unknown datatype")
    count = math.prod(shape)
    if tensor.raw is not None:
        values = _from_raw(tensor.datatype, tensor.raw, count, name)
    else:
        values = _flatten(tensor.data, name, shape)
        values = _checked_json(tensor.datatype, values, name)
    if len(values) != count:
        raise InvalidInput(f"input '{name}': {len(values)} values for a shape of {count}")
    return values


def _flatten(data: Any, name: str, shape: tuple[int, ...]) -> list[Any]:
    """`data` flat, or nested as its shape says (rows of `shape[1]` values): a ragged or
    reflowed nesting is refused, never read in another order."""
    if not isinstance(data, list):
        raise InvalidInput(f"input '{name}': 'data' must be a list")
    nested = [type(v) is list for v in data]
    if not any(nested):
        flat = data
    elif not all(nested) or len(shape) != 2 or len(data) != shape[0]:
        raise InvalidInput(f"input '{name}': nested 'data' must hold one list per row")
    else:
        width = shape[1]
        if any(len(row) != width for row in data):
            raise InvalidInput(f"input '{name}': every row of 'data' must hold {width} values")
        flat = [v for row in data for v in row]
    if any(isinstance(v, list | dict) for v in flat):
        raise InvalidInput(f"input '{name}': 'data' nests deeper than its shape")
    return flat


def _checked_json(datatype: str, values: list[Any], name: str) -> list[Any]:
    if datatype in FLOATS:
        ok = all(type(v) is float or type(v) is int or v is None for v in values)
        if ok and any(type(v) is float and not math.isfinite(v) for v in values):
            values = _nan_as_missing(values, name)
    elif datatype in INTEGERS:
        low, high = INTEGER_RANGES[datatype]
        ok = all(type(v) is int and low <= v <= high for v in values)
    elif datatype == "BOOL":
        ok = all(type(v) is bool for v in values)
    else:
        ok = all(type(v) is str for v in values)
    if not ok:
        raise InvalidInput(f"input '{name}': a value does not match datatype {datatype}")
    return values


def _nan_as_missing(values: list[Any], name: str) -> list[Any]:
    """NaN is a missing value (None); infinity is refused."""
    out = [None if v != v else v for v in values]
    if any(v is not None and not math.isfinite(v) for v in out):
        raise InvalidInput(f"input '{name}': infinity is not accepted")
    return out


def _from_raw(datatype: str, raw: bytes, count: int, name: str) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, name)
    dtype = np.dtype(FIXED[datatype])
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': {len(raw)} bytes for {count} {datatype} values "
            f"({count * dtype.itemsize} expected)"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and np.frombuffer(raw, dtype=np.uint8).max(initial=0) > 1:
        raise InvalidInput(f"input '{name}': a BOOL byte must be 0 or 1")
    values: list[Any] = array.tolist()
    if datatype in FLOATS and not np.isfinite(array).all():
        return _nan_as_missing(values, name)
    return values


def _bytes_elements(raw: bytes, name: str) -> list[str]:
    """BYTES in the binary layout: each element a 4-byte little-endian length, then its bytes."""
    out: list[str] = []
    at, end = 0, len(raw)
    while at < end:
        if at + 4 > end:
            raise InvalidInput(f"input '{name}': a BYTES element is cut short")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > end:
            raise InvalidInput(f"input '{name}': a BYTES element is cut short")
        try:
            out.append(raw[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 text") from None
        at += size
    return out


def rows_of(
    tensors: Sequence[TensorIn], content_type: str | None, max_rows: int
) -> tuple[str, list[Any]]:
    """(kind, rows) for the data plane: positional `instances` or named `records`."""
    if not tensors:
        raise InvalidInput("'inputs' must hold at least one tensor")
    shapes = [check_shape(t.name, t.shape) for t in tensors]
    if content_type not in (None, "np", "pd"):
        raise InvalidInput("parameter 'content_type' must be 'np' or 'pd'")
    single_matrix = len(tensors) == 1 and len(shapes[0]) == 2
    if content_type == "np" or (content_type is None and single_matrix):
        if len(tensors) != 1:
            raise InvalidInput("content type 'np' takes exactly one input tensor")
        shape: tuple[int, ...] = shapes[0] if len(shapes[0]) == 2 else (1, shapes[0][0])
        check_limits(tensors[0].name, shape[0], shape[1], max_rows)
        values = flat_values(tensors[0], shapes[0])
        width = shape[1]
        return "instances", [values[i : i + width] for i in range(0, len(values), width)]
    columns: dict[str, list[Any]] = {}
    rows = None
    for tensor, shape in zip(tensors, shapes, strict=True):
        if len(shape) == 2 and shape[1] != 1:
            raise InvalidInput(
                f"input '{tensor.name[:64]}': a column must have shape [N] or [N, 1]"
            )
        if rows is not None and shape[0] != rows:
            raise InvalidInput("every input column must have the same number of rows")
        rows = shape[0]
        check_limits(tensor.name, rows, 1, max_rows)
        if tensor.name in columns:
            raise InvalidInput(f"input '{tensor.name[:64]}' is given twice")
        columns[tensor.name] = flat_values(tensor, shape)
    if len(columns) > MAX_FEATURES:
        raise InvalidInput("more input columns than any model takes")
    names = list(columns)
    records = [
        dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return "records", records


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
