"""`DataPlane.predict`: one path for every protocol (gateway/dataplane/plane.py).

A real ModelManager holding a real scikit-learn version (no registry call: the version is
already current), the real coalescer, and the cache's in-process layer only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from gateway.dataplane.cache import PredictionCache
from gateway.dataplane.coalescer import Coalescer
from gateway.dataplane.models import ModelManager
from gateway.dataplane.plane import Answer, Caller, DataPlane, PredictCall
from gateway.dataplane.specs import parse_specs
from gateway.http.errors import TooManyRows
from kernel.errors import InvalidInput
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from runtime.sklearn import SklearnRuntime

SIGNATURE = Signature((Feature("a", "double"), Feature("b", "double")))
TREE = DecisionTreeClassifier(random_state=0).fit(np.array([[0, 0], [1, 1]]), [0, 1])


def plane(cache_mode: str = "sklearn", max_rows: int = 10) -> DataPlane:
    manager = ModelManager(
        parse_specs("m"),
        None,
        refresh_seconds=60,
        retry_seconds=1,
        cache_size=2,  # type: ignore[arg-type]
    )
    native = SklearnRuntime(TREE, SIGNATURE.names, SIGNATURE.all_numeric)
    manager.current["m"] = LoadedModel("m", 3, None, SIGNATURE, native, digest="d" * 64)
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=10)
    cache = PredictionCache(None, "t:", ttl_seconds=60, timeout_seconds=0.1, local_size=100)
    return DataPlane(manager, coalescer, cache, max_rows=max_rows, cache_mode=cache_mode)


def call(rows: Any, kind: str = "instances", model: str = "m") -> PredictCall:
    return PredictCall(model, kind, rows, None, Caller("k1", "team", "user-7"), "req-1", "v1")


def run(data_plane: DataPlane, coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    finally:
        data_plane.coalescer.close()


def test_an_answer_carries_the_version_the_prediction_and_the_call() -> None:
    data_plane = plane()
    answer = run(data_plane, data_plane.predict(call([[0.0, 0.0], [1.0, 1.0]])))
    assert answer.model.version == 3
    assert answer.prediction.labels == [0, 1]
    assert answer.prediction.probabilities == [[1.0, 0.0], [0.0, 1.0]]
    assert answer.call.caller.route_key == "user-7" and answer.call.protocol == "v1"


def test_records_and_instances_are_the_same_rows() -> None:
    data_plane = plane()

    async def both() -> tuple[Answer, Answer]:
        by_records = await data_plane.predict(call([{"a": 1.0, "b": 1.0}], kind="records"))
        return by_records, await data_plane.predict(call([[1.0, 1.0]]))

    by_records, by_rows = run(data_plane, both())
    assert by_records.prediction == by_rows.prediction


def test_a_runtime_worth_caching_answers_repeated_rows_from_the_cache() -> None:
    data_plane = plane("sklearn")

    async def twice() -> list[Answer]:
        return [await data_plane.predict(call([[1.0, 1.0]])) for _ in range(2)]

    first, second = run(data_plane, twice())
    assert (first.cache.hits, first.cache.misses) == (0, 1)
    assert (second.cache.hits, second.cache.misses) == (1, 0)
    assert second.prediction == first.prediction


def test_cache_mode_off_never_looks_up() -> None:
    data_plane = plane("off")

    async def twice() -> list[Answer]:
        return [await data_plane.predict(call([[1.0, 1.0]])) for _ in range(2)]

    assert [a.cache.hits + a.cache.misses for a in run(data_plane, twice())] == [0, 0]


def test_hooks_see_every_answer_and_a_failing_hook_never_fails_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data_plane = plane()
    seen: list[Answer] = []

    def broken(answer: Answer) -> None:
        raise RuntimeError("the log is full")

    data_plane.add_hook(broken)
    data_plane.add_hook(seen.append)
    with caplog.at_level(logging.ERROR):
        answer = run(data_plane, data_plane.predict(call([[0.0, 0.0]])))
    assert seen == [answer]
    assert any(r.exc_info and "answer hook" in r.getMessage() for r in caplog.records)


def test_errors_reach_no_hook() -> None:
    data_plane = plane(max_rows=1)
    seen: list[Answer] = []
    data_plane.add_hook(seen.append)

    async def failures() -> None:
        with pytest.raises(TooManyRows, match="submit them as a batch job"):
            await data_plane.predict(call([[0.0, 0.0]] * 2))
        with pytest.raises(InvalidInput):
            await data_plane.predict(call([["x", 0.0]]))

    run(data_plane, failures())
    assert seen == []
