"""Open Inference Protocol V2 input tensors: the rows of a request (outputs: v2_outputs.py).

Shared by the REST adapter (`v2.py`) and the gRPC one (`grpc_v2.py`): both hand over their
inputs as `TensorIn` (JSON `data`, gRPC typed `contents`, or raw little-endian bytes from the
binary extension or `raw_input_contents`).

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
#: The values each integer datatype holds.
INTEGER_RANGES = {
    k: (int(np.iinfo(FIXED[k]).min), int(np.iinfo(FIXED[k]).max)) for k in sorted(INTEGERS)
}
#: More features than any model takes (a bound on a client-declared width).
MAX_FEATURES = 100_000
DATATYPES = frozenset(FIXED) | {"BYTES"}


class TensorIn(NamedTuple):
    """One input tensor as a protocol carried it: `data` (JSON, gRPC contents) or `raw`."""

    name: str
    datatype: str
    shape: Any  # checked by check_shape: a list of one or two sizes
    data: Any = None
    raw: bytes | None = None


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
