"""The chunk task's logic with an in-memory store: crash guard, idempotency, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from jobs.record import CANCELLED, FAILED, QUEUED, SUCCEEDED, JobRecord
from kernel.errors import RegistryUnavailable
from registry.model import Prediction
from registry.signature import Feature, Signature
from worker.tasks import ChunkRunner


class FakeStore:
    def __init__(self, record: JobRecord, chunks: dict[int, list[list[Any]]]) -> None:
        self.record = record
        self.inputs = chunks
        self.done: dict[int, dict[str, Any]] = {}
        self.deliveries: dict[str, int] = {}

    def get(self, job_id: str) -> JobRecord:
        return self.record

    def update(self, job_id: str, **changes: Any) -> None:
        from dataclasses import replace

        self.record = replace(self.record, **changes)

    def count_delivery(self, job_id: str, delivery: str) -> int:
        self.deliveries[delivery] = self.deliveries.get(delivery, 0) + 1
        return self.deliveries[delivery]

    def is_done(self, job_id: str, n: int) -> bool:
        return n in self.done

    def chunks_done(self, job_id: str) -> int:
        return len(self.done)

    def chunk_input(self, job_id: str, n: int) -> list[list[Any]] | None:
        return self.inputs.get(n)

    def finish_chunk(self, job_id: str, n: int, result: dict[str, Any]) -> int:
        self.done.setdefault(n, result)
        return len(self.done)


class FakeModel:
    calls = 0
    signature = Signature((Feature("x", "double"),))

    def predict(self, rows: list[list[Any]]) -> Prediction:
        FakeModel.calls += 1
        return Prediction([0] * len(rows), None)


def _runner(chunks: int = 2, status: str = QUEUED) -> tuple[ChunkRunner, FakeStore]:
    record = JobRecord("j", "acme", "iris", 1, rows=chunks, chunks=chunks, status=status)
    store = FakeStore(record, {n: [[1.0]] for n in range(chunks)})
    runner = ChunkRunner(store, registry=None, max_deliveries=3)  # type: ignore[arg-type]
    runner.model = lambda name, version: FakeModel()  # type: ignore[method-assign, assignment, misc]
    return runner, store


def test_chunks_finish_the_job() -> None:
    runner, store = _runner()
    assert runner.run("j", 0) == "done" and store.record.status == "running"
    assert runner.run("j", 1) == "done" and store.record.status == SUCCEEDED


def test_a_redelivered_chunk_changes_nothing() -> None:
    runner, store = _runner()
    runner.run("j", 0)
    before = FakeModel.calls
    assert runner.run("j", 0) == "duplicate"
    assert FakeModel.calls == before and len(store.done) == 1


def test_a_chunk_that_keeps_crashing_fails_the_job() -> None:
    runner, store = _runner()
    for _ in range(3):  # three deliveries that "crashed" before finishing
        store.count_delivery("j", "0:0")
    assert runner.run("j", 0, attempt=0) == "failed"
    assert store.record.status == FAILED and store.record.error_code == "chunk_crashed"


def test_a_celery_retry_is_a_new_attempt() -> None:
    runner, store = _runner()
    for _ in range(3):
        store.count_delivery("j", "0:0")
    assert runner.run("j", 0, attempt=1) == "done"


def test_a_cancelled_job_is_skipped() -> None:
    runner, store = _runner(status=CANCELLED)
    assert runner.run("j", 0) == "skipped" and not store.done


def test_a_model_load_cut_by_the_time_limit_is_retried_not_the_end_of_the_job() -> None:
    runner, store = _runner()

    def slow_load(name: str, version: int) -> FakeModel:
        raise SoftTimeLimitExceeded()

    runner.model = slow_load  # type: ignore[method-assign, assignment]
    with pytest.raises(RegistryUnavailable):  # the task's autoretry takes it from here
        runner.run("j", 0)
    assert store.record.status != FAILED and not store.done
