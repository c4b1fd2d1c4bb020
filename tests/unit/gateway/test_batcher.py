"""The coalescer: shared model calls, own rows back, bounded queue (dataplane/coalescer.py)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.dataplane.coalescer import Coalescer
from gateway.http.errors import Overloaded
from kernel.errors import InvalidInput
from registry.model import Prediction


class EchoModel:
    """Answers each row with its first value; records every call; can hold calls until released."""

    name, version = "m", 1
    # A runtime that never runs on the loop, as scikit-learn's.
    runtime = SimpleNamespace(name="sklearn", inline_rows=0)

    def runtime_for(self, rows: Any) -> Any:
        return self.runtime

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[list[list[Any]]] = []
        self.threads: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def predict(self, rows: list[list[Any]]) -> Prediction:
        self.calls.append(rows)
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(5), "the test never released the model"
        if any(row[0] < 0 for row in rows):
            raise InvalidInput("the model cannot score these rows")
        return Prediction([row[0] for row in rows], [[float(row[0])] for row in rows])


def run(coalescer: Coalescer, scenario: Any) -> Any:
    try:
        return asyncio.run(scenario())
    finally:
        coalescer.close()


def test_one_request_gets_its_answer_from_a_pool_thread() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=8, max_wait_seconds=0, max_pending=4)
    model = EchoModel()

    async def scenario() -> Prediction:
        return await coalescer.predict(model, [[1], [2]])  # type: ignore[arg-type]

    assert run(coalescer, scenario) == Prediction([1, 2], [[1.0], [2.0]])
    assert all(name.startswith("predict") for name in model.threads)
    assert coalescer.pending == 0 and coalescer.busy == 0


def test_requests_arriving_while_the_thread_is_busy_share_the_next_call() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=100)
    model = EchoModel(hold=True)

    async def scenario() -> list[Prediction]:
        first = asyncio.create_task(coalescer.predict(model, [[0]]))  # type: ignore[arg-type]
        await asyncio.to_thread(model.entered.wait, 5)
        others = [
            asyncio.create_task(coalescer.predict(model, [[n], [n + 100]]))  # type: ignore[arg-type]
            for n in range(1, 6)
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first] + [await task for task in others]

    results = run(coalescer, scenario)
    assert len(model.calls) == 2  # the first alone, then the five together
    assert len(model.calls[1]) == 10
    for n, result in enumerate(results[1:], start=1):
        assert result.labels == [n, n + 100]
        assert result.probabilities == [[float(n)], [float(n + 100)]]


def test_a_batch_never_exceeds_max_rows_but_a_big_request_goes_alone() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=4, max_wait_seconds=0, max_pending=100)
    model = EchoModel(hold=True)

    async def scenario() -> list[Prediction]:
        first = asyncio.create_task(coalescer.predict(model, [[0]]))  # type: ignore[arg-type]
        await asyncio.to_thread(model.entered.wait, 5)
        big = asyncio.create_task(coalescer.predict(model, [[9]] * 6))  # type: ignore[arg-type]
        small = [
            asyncio.create_task(coalescer.predict(model, [[n], [n]]))  # type: ignore[arg-type]
            for n in range(1, 4)
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first, await big] + [await task for task in small]

    results = run(coalescer, scenario)
    assert [len(call) for call in model.calls] == [1, 6, 4, 2]
    assert results[1].labels == [9] * 6
    assert [r.labels for r in results[2:]] == [[1, 1], [2, 2], [3, 3]]


def test_a_bad_request_fails_alone_and_its_batch_mates_succeed() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=100)
    model = EchoModel(hold=True)

    async def scenario() -> list[Any]:
        first = asyncio.create_task(coalescer.predict(model, [[0]]))  # type: ignore[arg-type]
        await asyncio.to_thread(model.entered.wait, 5)
        tasks = [
            asyncio.create_task(coalescer.predict(model, [[n]]))  # type: ignore[arg-type]
            for n in (1, -1, 3)
        ]
        await asyncio.sleep(0.05)
        model.release.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    good, bad, other = run(coalescer, scenario)
    assert good.labels == [1] and other.labels == [3]
    assert isinstance(bad, InvalidInput)
    assert coalescer.pending == 0


def test_the_queue_is_bounded_and_accepts_again_once_it_drains() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=2)
    model = EchoModel(hold=True)

    async def scenario() -> list[Prediction]:
        held = [
            asyncio.create_task(coalescer.predict(model, [[n]]))  # type: ignore[arg-type]
            for n in (1, 2)
        ]
        await asyncio.to_thread(model.entered.wait, 5)
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await coalescer.predict(model, [[3]])  # type: ignore[arg-type]
        model.release.set()
        done = [await task for task in held]
        done.append(await coalescer.predict(model, [[4]]))  # type: ignore[arg-type]
        return done

    assert [r.labels for r in run(coalescer, scenario)] == [[1], [2], [4]]


def test_a_maximum_wait_lets_requests_gather_while_a_thread_is_free() -> None:
    coalescer = Coalescer(threads=2, max_batch_rows=100, max_wait_seconds=0.2, max_pending=100)
    model = EchoModel()

    async def scenario() -> list[Prediction]:
        first = asyncio.create_task(coalescer.predict(model, [[1]]))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        second = asyncio.create_task(coalescer.predict(model, [[2]]))  # type: ignore[arg-type]
        return [await first, await second]

    results = run(coalescer, scenario)
    assert model.calls == [[[1], [2]]]
    assert [r.labels for r in results] == [[1], [2]]


def test_an_unexpected_error_reaches_every_request_of_the_call_and_frees_the_slots() -> None:
    class Broken(EchoModel):
        def predict(self, rows: list[list[Any]]) -> Prediction:
            raise RuntimeError("bug")

    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=1)

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await coalescer.predict(Broken(), [[1]])  # type: ignore[arg-type]

    run(coalescer, scenario)
    assert coalescer.pending == 0 and coalescer.busy == 0


class OnnxEcho(EchoModel):
    runtime = SimpleNamespace(name="onnx", inline_rows=64)


def test_small_onnx_calls_run_on_the_loop_and_share_a_call_within_one_turn() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0, max_pending=100)
    model = OnnxEcho()

    async def scenario() -> list[Prediction]:
        # Started in one turn of the loop: the first call is only scheduled, so the rest queue.
        tasks = [
            asyncio.create_task(coalescer.predict(model, [[n]]))  # type: ignore[arg-type]
            for n in range(5)
        ]
        return [await task for task in tasks]

    results = run(coalescer, scenario)
    assert [r.labels for r in results] == [[n] for n in range(5)]
    assert model.threads == {threading.main_thread().name}  # no hop to a pool thread
    assert len(model.calls) < 5  # some requests shared a call
    assert sum(len(call) for call in model.calls) == 5
    assert coalescer.pending == 0 and coalescer.busy == 0


def test_a_large_onnx_call_still_goes_to_a_thread_and_a_bad_row_fails_only_its_request() -> None:
    coalescer = Coalescer(threads=1, max_batch_rows=1000, max_wait_seconds=0, max_pending=100)
    model = OnnxEcho()

    async def scenario() -> tuple[Prediction, Any]:
        big = await coalescer.predict(model, [[n] for n in range(65)])  # type: ignore[arg-type]
        good = asyncio.create_task(coalescer.predict(model, [[1]]))  # type: ignore[arg-type]
        bad = asyncio.create_task(coalescer.predict(model, [[-1]]))  # type: ignore[arg-type]
        outcome = await asyncio.gather(good, bad, return_exceptions=True)
        assert big.labels == list(range(65))
        return outcome[0], outcome[1]

    good, bad = run(coalescer, scenario)
    assert any(name.startswith("predict") for name in model.threads)
    assert good.labels == [1]
    assert isinstance(bad, InvalidInput)
