"""Cache keys (gateway/dataplane/cache.py): what makes two predictions the same entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import orjson

from gateway.dataplane.cache import PredictionCache, decode, encode
from runtime.base import CLASS_1_SCORE, LABELS


@dataclass
class Served:
    name: str = "iris"
    version: int = 1
    digest: str = "a" * 64
    runtime: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(name="onnx"))
    native: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(mlflow_output=LABELS))


def keys(model: Served, rows: list[list[float | int]]) -> list[bytes]:
    cache = PredictionCache(None, "mg:", ttl_seconds=60, timeout_seconds=0.05, local_size=0)
    return cache.keys(model, rows)  # type: ignore[arg-type]


def test_the_same_row_of_the_same_artifact_is_one_entry_and_ints_equal_floats() -> None:
    assert keys(Served(), [[5, 3.5, 1.4, 0.2]]) == keys(Served(), [[5.0, 3.5, 1.4, 0.2]])
    one, other = keys(Served(), [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, 0.3]])
    assert one != other


def test_version_artifact_and_runtime_each_make_a_different_entry() -> None:
    row = [[5.1, 3.5, 1.4, 0.2]]
    base = keys(Served(), row)
    # A model deleted and registered again starts at version 1 with another artifact.
    assert keys(Served(digest="b" * 64), row) != base
    assert keys(Served(version=2), row) != base
    assert keys(Served(runtime=SimpleNamespace(name="sklearn")), row) != base
    assert keys(Served(name="other"), row) != base


def test_entries_with_scores_have_keys_of_their_own_and_both_shapes_decode() -> None:
    # A gateway of the version before scores decodes two values only: it must never read three.
    row = [[5.1, 3.5, 1.4, 0.2]]
    booster = Served(native=SimpleNamespace(mlflow_output=CLASS_1_SCORE))
    assert keys(booster, row)[0].startswith(b"mg:pcs:") and keys(Served(), row)[0].startswith(
        b"mg:pc:"
    )
    assert decode(encode(1, [0.25, 0.75], 0.7512345678)) == (1, [0.25, 0.75], 0.7512345678)
    assert decode(encode(1, [0.25, 0.75])) == (1, [0.25, 0.75], None)
    assert orjson.loads(encode(1, [0.25, 0.75])) == [1, [0.25, 0.75]]  # as before scores
