"""Cache keys of rows with a missing value (gateway/dataplane/cache.py, issue 12)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gateway.dataplane.cache import PredictionCache, row_key
from registry.signature import Feature, Signature

MODEL = SimpleNamespace(
    name="hgb",
    version=1,
    digest="a" * 64,
    runtime=SimpleNamespace(name="sklearn"),
    native=SimpleNamespace(mlflow_output="labels"),
)
SIGNATURE = Signature((Feature("a", "double", True), Feature("b", "double", True)))


def key(row: list[Any]) -> bytes:
    cache = PredictionCache(None, "mg:", ttl_seconds=60, timeout_seconds=0.05, local_size=0)
    return cache.keys(MODEL, [row])[0]  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", [float("nan"), None])
@pytest.mark.parametrize("number", [0, 0.0, -0.0, 1, 1e-300, -3e38])
def test_a_missing_value_never_shares_a_key_with_a_number(missing: Any, number: float) -> None:
    assert key([missing, 1]) != key([number, 1])
    assert key([1, missing]) != key([1, number])


def test_the_same_missing_row_has_the_same_key_every_time() -> None:
    # NaN != NaN, but the key is a hash of bytes: the second request finds the first's entry.
    assert key([float("nan"), 1]) == key([float("nan"), 1.0])
    assert row_key([float("nan"), 1]) == row_key([float("nan"), 1])
    # NaN (a numeric feature) and None (any other) are both JSON's null: one missing value.
    assert key([float("nan"), 1]) == key([None, 1])


def test_rows_as_the_signature_checks_them() -> None:
    """From the JSON body to the key: null is NaN after the check, and keys tell it from 0."""
    first = SIGNATURE.check_instances([[None, 1], [0, 1], [None, 1], [1, None]])
    second = SIGNATURE.check_records([{"a": None, "b": 1}])
    keys = [key(row) for row in first + second]
    assert keys[0] == keys[2] == keys[4]
    assert len({keys[0], keys[1], keys[3]}) == 3
