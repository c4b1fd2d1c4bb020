"""JSON bodies with a NaN or Infinity literal (gateway/http/payload.py, issue 12)."""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.http.errors import InvalidJson
from gateway.http.payload import NAN_LITERAL, is_nan_literal, parse_json
from kernel.errors import InvalidInput


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1, NaN]]}',
        b'{"instances": [[Infinity, 1]]}',
        b'{"instances": [[1, -Infinity]]}',
        b'{"records": [{"a": nan, "b": 1}]}',
        b'{"records": [{"a": -inf}]}',
        '{"records": [{"longueur é€": NaN}]}'.encode(),  # the error's position counts characters
        b"\n\n  [NaN]",
        # Python writes these: json.dumps of a frame's values, where pandas' to_json writes null.
        json.dumps({"instances": [[1.0, float("nan")], [float("inf"), 2.0]]}).encode(),
    ],
)
def test_a_nan_literal_is_a_422_that_says_to_send_null(body: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_json(body)
    assert caught.value.message == NAN_LITERAL
    assert "null" in NAN_LITERAL
    assert caught.value.code == "invalid_input"  # 422 in gateway/http/errors.py


def test_null_is_the_missing_value_and_parses() -> None:
    assert parse_json(b'{"instances": [[1, null]]}') == {"instances": [[1, None]]}


@pytest.mark.parametrize(
    "body", [b'{"instances": [[1, "NaN"]]', b"[1, Nul]", b"[Nonsense]", b"\xff[NaN]", b"[1 2]"]
)
def test_other_invalid_json_is_still_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        parse_json(body)


def test_a_number_too_large_is_still_out_of_range() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_json(b"[1e400]")
    assert caught.value.message == "a number is out of range"


def test_is_nan_literal_looks_where_orjson_stopped() -> None:
    def error(body: bytes) -> orjson.JSONDecodeError:
        with pytest.raises(orjson.JSONDecodeError) as caught:
            orjson.loads(body)
        return caught.value

    assert is_nan_literal(error(b'{"a": NaN}'))
    assert not is_nan_literal(error(b'{"a": "NaN" x}'))
    assert not is_nan_literal(error(b'{"a": tru}'))
