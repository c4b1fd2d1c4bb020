"""V2 tensors and bodies (pure): both input layouts, raw and JSON data, outputs, refusals."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.protocols.v2_bodies import parse_infer, render_infer
from gateway.protocols.v2_outputs import (
    model_metadata,
    output_tensors,
    predict_datatype,
    raw_bytes,
)
from gateway.protocols.v2_tensors import TensorIn, rows_of
from kernel.errors import InvalidInput
from registry.signature import Feature, Signature
from runtime.base import Prediction


def _bytes(*words: str) -> bytes:
    return b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in words)


def test_a_2d_tensor_is_positional_rows_flat_or_nested() -> None:
    nested = TensorIn("x", "FP32", [2, 2], data=[[1.0, 2.0], [3.0, 4.0]])
    flat = nested._replace(data=[1.0, 2.0, 3.0, 4.0])
    for tensor in (nested, flat):
        assert rows_of([tensor], None, 10) == ("instances", [[1.0, 2.0], [3.0, 4.0]])


def test_raw_little_endian_data_is_read_by_datatype() -> None:
    raw = np.asarray([[1, 2], [3, 4]], dtype="<i8").tobytes()
    assert rows_of([TensorIn("x", "INT64", [2, 2], raw=raw)], None, 10)[1] == [[1, 2], [3, 4]]
    f32 = np.asarray([0.5, 1.5], dtype="<f4").tobytes()
    assert rows_of([TensorIn("x", "FP32", [1, 2], raw=f32)], "np", 10)[1] == [[0.5, 1.5]]


def test_nan_and_null_are_missing_values_for_the_signature_to_judge() -> None:
    raw = np.asarray([[1.0, np.nan]], dtype="<f8").tobytes()
    assert rows_of([TensorIn("x", "FP64", [1, 2], raw=raw)], None, 10)[1] == [[1.0, None]]
    as_json = TensorIn("x", "FP32", [1, 2], data=[None, 2.0])
    assert rows_of([as_json], None, 10)[1] == [[None, 2.0]]
    nan_json = TensorIn("x", "FP32", [1, 2], data=[float("nan"), 2.0])
    assert rows_of([nan_json], None, 10)[1] == [[None, 2.0]]


def test_a_1d_np_tensor_is_one_row_limited_by_width_not_rows() -> None:
    wide = TensorIn("x", "FP32", [1500], data=[1.0] * 1500)
    assert rows_of([wide], "np", 10) == ("instances", [[1.0] * 1500])


def test_one_column_per_feature_gives_records_with_bytes_as_text() -> None:
    tensors = [
        TensorIn("colour", "BYTES", [2], raw=_bytes("red", "blue")),
        TensorIn("size", "FP64", [2, 1], data=[[1.0], [2.0]]),
    ]
    kind, rows = rows_of(tensors, None, 10)
    assert kind == "records"
    assert rows == [{"colour": "red", "size": 1.0}, {"colour": "blue", "size": 2.0}]
    json_bytes = [TensorIn("colour", "BYTES", [1], data=["red"])]
    assert rows_of(json_bytes, "pd", 10)[1] == [{"colour": "red"}]


REFUSED: list[tuple[str, list[TensorIn], str | None]] = [
    ("no tensors", [], None),
    ("3 dims", [TensorIn("x", "FP32", [1, 1, 1], data=[1.0])], None),
    ("negative", [TensorIn("x", "FP32", [-1, 2], data=[1.0])], None),
    ("a float size", [TensorIn("x", "FP32", [1.0, 2], data=[1.0, 2.0])], None),
    ("rows over the limit", [TensorIn("x", "FP32", [11, 1], data=[1.0] * 11)], None),
    ("huge", [TensorIn("x", "FP32", [2**62, 2**62], data=[])], None),
    ("short data", [TensorIn("x", "FP32", [2, 2], data=[1.0, 2.0, 3.0])], None),
    ("ints as floats", [TensorIn("x", "INT64", [1, 2], data=[1.5, 2.0])], None),
    ("bools as ints", [TensorIn("x", "BOOL", [1, 1], data=[1])], None),
    ("unknown datatype", [TensorIn("x", "FP8", [1, 1], data=[1.0])], None),
    ("raw length", [TensorIn("x", "FP32", [1, 2], raw=b"\x00" * 7)], None),
    ("raw infinity", [TensorIn("x", "FP64", [1, 1], raw=np.asarray([np.inf]).tobytes())], None),
    ("JSON infinity", [TensorIn("x", "FP64", [1, 1], data=[float("inf")])], None),
    ("ragged rows", [TensorIn("x", "FP32", [2, 3], data=[[1, 2, 3, 4], [5, 6]])], None),
    ("mixed nesting", [TensorIn("x", "FP32", [2, 2], data=[[1, 2], 3, 4])], None),
    ("nested 1-D", [TensorIn("x", "FP32", [2], data=[[1], [2]])], None),
    ("INT8 range", [TensorIn("x", "INT8", [1, 1], data=[300])], None),
    ("UINT8 negative", [TensorIn("x", "UINT8", [1, 1], data=[-1])], None),
    ("BOOL byte", [TensorIn("x", "BOOL", [1, 1], raw=b"\x02")], None),
    ("1-D np too wide", [TensorIn("x", "FP32", [200_000], data=[1.0] * 3)], "np"),
    ("cut BYTES", [TensorIn("x", "BYTES", [1], raw=b"\x05\x00\x00\x00ab")], None),
    ("bad utf-8", [TensorIn("x", "BYTES", [1], raw=b"\x01\x00\x00\x00\xff")], None),
    ("too deep", [TensorIn("x", "FP32", [1, 2], data=[[[1.0, 2.0]]])], None),
    ("np with two", [TensorIn("a", "FP32", [1], data=[1.0])] * 2, "np"),
    ("unknown content type", [TensorIn("a", "FP32", [1], data=[1.0])], "csv"),
    ("column width", [TensorIn("a", "FP32", [1, 2], data=[1.0, 2.0])], "pd"),
    (
        "row counts",
        [TensorIn("a", "FP32", [1], data=[1.0]), TensorIn("b", "FP32", [2], data=[1.0, 2.0])],
        None,
    ),
    ("zero width", [TensorIn("x", "FP32", [1, 0], data=[])], None),
]


@pytest.mark.parametrize(("what", "tensors", "content_type"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_tensors_are_refused_without_echoing_values(
    what: str, tensors: list[TensorIn], content_type: str | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        rows_of(tensors, content_type, 10)
    assert "1.5" not in caught.value.message and "ab" not in caught.value.message


def _model(classes: Any, probabilities: bool = True, **signature: Any) -> Any:
    features = signature.get("features", (Feature("a", "double"), Feature("b", "double")))
    return SimpleNamespace(
        name="m",
        classes=classes,
        has_probabilities=probabilities,
        signature=Signature(tuple(features)),
        flavor="sklearn",
    )


def test_output_datatypes_follow_the_classes() -> None:
    assert predict_datatype(_model([0, 1])) == "INT64"
    assert predict_datatype(_model(["a", "b"])) == "BYTES"
    assert predict_datatype(_model([False, True])) == "BOOL"
    assert predict_datatype(_model(None, False)) == "FP64"
    assert predict_datatype(_model([0.0, 1.0])) == "FP64"
    assert predict_datatype(_model([2**70, 1])) == "BYTES"  # past int64


def test_outputs_all_by_default_or_the_named_ones() -> None:
    model = _model(["a", "b"])
    answer = Prediction(["a", "b"], [[0.9, 0.1], [0.2, 0.8]])
    tensors = output_tensors(model, answer, None)
    assert [(t.name, t.datatype, t.shape) for t in tensors] == [
        ("predict", "BYTES", [2]),
        ("predict_proba", "FP64", [2, 2]),
    ]
    assert tensors[1].data == [0.9, 0.1, 0.2, 0.8]
    assert [t.name for t in output_tensors(model, answer, ["predict_proba"])] == ["predict_proba"]
    with pytest.raises(InvalidInput, match="this version gives: predict, predict_proba"):
        output_tensors(model, answer, ["logits"])
    assert raw_bytes(tensors[0]) == _bytes("a", "b")
    regressor = _model(None, probabilities=False)
    with pytest.raises(InvalidInput):
        output_tensors(regressor, Prediction([1.0], None), ["predict_proba"])


def test_metadata_of_a_mixed_signature_lists_one_input_per_column() -> None:
    model = _model([0, 1], features=(Feature("colour", "string"), Feature("n", "long")))
    meta = model_metadata(model, [3])
    assert meta["inputs"] == [
        {"name": "colour", "datatype": "BYTES", "shape": [-1]},
        {"name": "n", "datatype": "INT64", "shape": [-1]},
    ]
    assert meta["versions"] == ["3"]


def test_the_binary_extension_splits_header_and_tensors() -> None:
    raw = np.asarray([1.0, 2.0], dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "id": "7",
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    parsed = parse_infer(header + raw, str(len(header)))
    assert parsed.id == "7" and parsed.tensors[0].raw == raw
    assert parsed.outputs == ["predict"] and parsed.binary == {"predict"}
    model = _model([0, 1])
    tensors = output_tensors(model, Prediction([1], [[0.3, 0.7]]), parsed.outputs)
    body, split = render_infer(parsed, "m", 2, tensors)
    assert split is not None
    answer = orjson.loads(body[:split])
    assert answer["model_version"] == "2" and answer["id"] == "7"
    assert answer["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(body[split:], dtype="<i8").tolist() == [1]


def test_an_outputs_own_binary_data_false_wins_over_the_request_default() -> None:
    body = orjson.dumps(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}],
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "predict", "parameters": {"binary_data": False}},
                {"name": "predict_proba"},
            ],
        }
    )
    parsed = parse_infer(body, None)
    tensors = output_tensors(_model([0, 1]), Prediction([1], [[0.3, 0.7]]), parsed.outputs)
    answer, split = render_infer(parsed, "m", 1, tensors)
    assert split is not None
    outputs = orjson.loads(answer[:split])["outputs"]
    assert outputs[0]["data"] == [1] and "parameters" not in outputs[0]
    assert outputs[1]["parameters"] == {"binary_data_size": 16}


@pytest.mark.parametrize(
    ("body", "length"),
    [
        (b"{}", "9" * 5000),
        (b"{}", "99"),
        (b"{}", "x"),
        (b"[]", None),
        (b'{"inputs": {}}', None),
        (b'{"inputs": [1]}', None),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None),
        (b'{"inputs": [], "id": 5}', None),
        (b'{"inputs": [], "outputs": [{}]}', None),
        (b'{"inputs": [], "parameters": []}', None),
    ],
)
def test_bad_bodies_are_refused(body: bytes, length: str | None) -> None:
    with pytest.raises(InvalidInput):
        parse_infer(body, length)


def test_data_and_binary_data_size_together_are_refused() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1],
                    "data": [1.0],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    with pytest.raises(InvalidInput, match="not both"):
        parse_infer(header + b"\x00" * 4, str(len(header)))


def test_binary_data_must_be_used_exactly() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 1],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    with pytest.raises(InvalidInput, match="longer"):
        parse_infer(header + b"\x00" * 8, str(len(header)))
    with pytest.raises(InvalidInput, match="runs past"):
        parse_infer(header + b"\x00" * 2, str(len(header)))
