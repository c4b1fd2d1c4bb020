"""The chunk task counts failures by code, redeliveries and duplicates (worker/metrics.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.unit.worker.test_chunk_runner import _runner


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_redelivered_chunk_counts_once_as_redelivery_and_duplicate() -> None:
    runner, _ = _runner()
    redeliveries = value("modelgate_worker_redeliveries_total")
    duplicates = value("modelgate_worker_duplicate_chunks_total")
    assert runner.run("j", 0) == "done"
    assert value("modelgate_worker_redeliveries_total") == redeliveries  # a first delivery
    assert runner.run("j", 0) == "duplicate"
    assert value("modelgate_worker_redeliveries_total") == redeliveries + 1
    assert value("modelgate_worker_duplicate_chunks_total") == duplicates + 1


def test_a_crash_loop_counts_a_failure_with_its_code() -> None:
    runner, store = _runner()
    crashed = value("modelgate_worker_chunk_failures_total", code="chunk_crashed")
    for _ in range(3):  # three deliveries that "crashed" before finishing
        store.count_delivery("j", "0:0")
    assert runner.run("j", 0, attempt=0) == "failed"
    assert value("modelgate_worker_chunk_failures_total", code="chunk_crashed") == crashed + 1


def test_a_celery_retry_is_not_a_redelivery() -> None:
    runner, store = _runner()
    redeliveries = value("modelgate_worker_redeliveries_total")
    store.count_delivery("j", "0:0")  # attempt 0 was delivered, then raised (registry down)
    assert runner.run("j", 0, attempt=1) == "done"
    assert value("modelgate_worker_redeliveries_total") == redeliveries
