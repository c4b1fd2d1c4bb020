"""JobStore, RedisChunkStore and idempotency claims on a real redis-server, with each race made
to happen at a chosen point: a worker's stale record, a cancel landing mid-chunk, a late failure
after success, two requests claiming one Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import pytest
from redis import Redis

from devstack.processes import RedisServer
from jobs.chunks import ChunkResult, RedisChunkStore
from jobs.errors import IdempotencyConflict, IdempotencyInProgress, JobResultsDeleted
from jobs.idempotency import Idempotency, IdempotencyClaim
from jobs.owner_usage import Usage
from jobs.record import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord
from jobs.store import JobStore
from registry.model import Prediction
from registry.signature import Feature, Signature
from worker.tasks import ChunkRunner

pytestmark = pytest.mark.integration

TTL = 600
#: Caps no test here reaches (tests/integration/test_job_counters.py tests the caps).
CAPS = Usage(100, 10**6, 10**9)


@pytest.fixture
def store(redis: Redis, prefix: str) -> JobStore:
    return JobStore(redis, prefix, TTL, chunk_size=2)


def new_job(store: JobStore, chunks: int = 2, status: str = QUEUED) -> JobRecord:
    """A job stored as JobClient.submit stores one: its share reserved chunk by chunk."""
    expires = time.time() + TTL
    record = JobRecord(
        secrets.token_hex(16), "acme", "iris", 1, rows=2 * chunks, chunks=chunks, expires=expires
    )
    store.usage.reserve("acme", record.id, CAPS, expires, slot=True)
    for n in range(chunks):
        ids = [[f"r{n}a"], [f"r{n}b"]]
        size = store.chunks.write_input(record.id, n, [[1.0], [2.0]], ids, expires)
        store.usage.reserve("acme", record.id, CAPS, expires, rows=2, size=size)
    store.create(record)
    if status != QUEUED:
        assert store.update(record.id, status=status)
    return store.get(record.id) or record


def result_keys(store: JobStore, job_id: str) -> list[bytes]:
    return list(store.redis.scan_iter(store.key(job_id, "out:*")))


class Model:
    """Predicts zeros; `during` runs inside predict, i.e. while the chunk is in flight."""

    signature = Signature((Feature("x", "double"),))

    def __init__(self, during: Any = None) -> None:
        self.during = during

    def predict(self, rows: list[list[Any]]) -> Prediction:
        if self.during is not None:
            self.during()
        return Prediction([0] * len(rows), None)


class StaleReads:
    """The runner's view of the store, whose record was read before `cancel` ran."""

    def __init__(self, store: JobStore, stale: JobRecord) -> None:
        self._store = store
        self._stale = stale

    def get(self, job_id: str) -> JobRecord:
        return self._stale

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def runner(store: Any, model: Model | None = None) -> ChunkRunner:
    chunk_runner = ChunkRunner(store, registry=None, max_deliveries=3)  # type: ignore[arg-type]

    def load(name: str, version: int) -> Model:
        return model or Model()

    chunk_runner.model = load  # type: ignore[method-assign, assignment]
    return chunk_runner


# -- state changes -------------------------------------------------------------------------


def test_status_moves_only_along_the_transitions(store: JobStore) -> None:
    record = new_job(store)
    assert store.update(record.id, status=RUNNING, started=1.0)
    assert not store.update(record.id, status=RUNNING, started=2.0)  # running -> running
    assert store.update(record.id, status=CANCELLED, finished=3.0)
    for status in (RUNNING, SUCCEEDED, FAILED, CANCELLED):
        assert not store.update(record.id, status=status, finished=4.0), status
    final = store.get(record.id)
    assert final is not None and (final.status, final.started, final.finished) == (
        CANCELLED,
        1.0,
        3.0,
    )


def test_a_change_to_an_expired_job_brings_back_no_record(store: JobStore) -> None:
    record = new_job(store)
    store.redis.delete(store.key(record.id))  # as if it expired
    assert not store.update(record.id, status=FAILED, error_code="chunk_failed")
    assert store.redis.exists(store.key(record.id)) == 0


def test_a_worker_that_read_the_record_before_the_cancel_does_not_restart_the_job(
    store: JobStore,
) -> None:
    record = new_job(store)
    stale = store.get(record.id)
    assert stale is not None and stale.status == QUEUED
    store.cancel(stale)
    assert runner(StaleReads(store, stale)).run(record.id, 0) == "skipped"
    after = store.get(record.id)
    assert after is not None and after.status == CANCELLED and after.started is None
    assert store.owner_usage("acme") == Usage(0, 0, 0)  # no running-job slot, rows or bytes


def test_a_chunk_that_finishes_after_a_cancel_leaves_no_result_and_no_progress(
    store: JobStore,
) -> None:
    record = new_job(store, chunks=3)
    assert runner(store).run(record.id, 0) == "done"
    in_flight = runner(store, Model(during=lambda: store.cancel(store.get(record.id) or record)))
    assert in_flight.run(record.id, 1) == "skipped"
    after = store.get(record.id)
    assert after is not None and after.status == CANCELLED
    assert store.chunks_done(record.id) == 1 and store.rows_done(after) == 2  # frozen
    assert result_keys(store, record.id) == []
    assert runner(store).run(record.id, 2) == "skipped"


class UnguardedChunkStore(RedisChunkStore):
    """A store that cannot check the job's status when it writes (as object storage)."""

    def write_result(self, job_id: str, n: int, result: ChunkResult) -> int:
        return 2 if self.redis.set(self._key(job_id, "out", n), b"{}", ex=self.ttl, nx=True) else 0


def test_a_result_a_store_wrote_after_the_cancel_is_taken_back(redis: Redis, prefix: str) -> None:
    store = JobStore(redis, prefix, TTL, 2, chunks=UnguardedChunkStore(redis, prefix, TTL))
    record = new_job(store)
    store.cancel(record)  # before the result is written: the cancel's delete missed it
    assert store.finish_chunk(record.id, 0, {"predictions": [0, 0]}) is None
    assert result_keys(store, record.id) == [] and store.chunks_done(record.id) == 0


def test_a_redelivered_result_never_overwrites_and_counts_once(store: JobStore) -> None:
    record = new_job(store)
    assert store.finish_chunk(record.id, 0, {"predictions": [1, 1]}) == 1
    assert store.finish_chunk(record.id, 0, {"predictions": [9, 9]}) == 1
    assert store.finish_chunk(record.id, 1, {"predictions": [2, 2]}) == 2
    results = list(store.chunks.iter_results(record.id, record.chunks))
    assert results == [
        ([["r0a"], ["r0b"]], {"predictions": [1, 1]}),
        ([["r1a"], ["r1b"]], {"predictions": [2, 2]}),
    ]


def test_a_redelivered_last_chunk_finishes_a_job_whose_worker_died_before_it_did(
    store: JobStore,
) -> None:
    record = new_job(store, chunks=3, status=RUNNING)
    # The worker counted the chunks and died before it marked the job succeeded.
    for n in range(2):
        assert store.finish_chunk(record.id, n, {"predictions": [0, 0]}) == n + 1
    assert runner(store).run(record.id, 0) == "duplicate"  # chunk 2 is not done: still running
    assert (store.get(record.id) or record).status == RUNNING
    assert store.finish_chunk(record.id, 2, {"predictions": [0, 0]}) == 3
    assert store.owner_usage("acme").active == 1
    assert runner(store).run(record.id, 2) == "duplicate"
    after = store.get(record.id)
    assert after is not None and after.status == SUCCEEDED and after.finished is not None
    assert after.expires == pytest.approx(after.finished + store.results_ttl, abs=2)
    assert store.owner_usage("acme") == Usage(0, 6, store.owner_usage("acme").bytes)
    assert runner(store).run(record.id, 2) == "skipped"  # finished: nothing more to do


# -- finished jobs ---------------------------------------------------------------------------


def _succeeded(store: JobStore) -> JobRecord:
    record = new_job(store)
    chunk_runner = runner(store)
    assert [chunk_runner.run(record.id, n) for n in range(2)] == ["done", "done"]
    final = store.get(record.id)
    assert final is not None and final.status == SUCCEEDED
    return final


def test_a_late_failure_of_a_succeeded_job_leaves_it_succeeded(store: JobStore) -> None:
    record = _succeeded(store)
    runner(store).fail(record.id, "chunk_timeout", "chunk 1 could not be predicted")
    after = store.get(record.id)
    assert after is not None and after.status == SUCCEEDED and after.error_code is None


def test_delete_of_a_succeeded_job_keeps_its_status_and_deletes_its_data(
    store: JobStore, redis_durable: RedisServer, prefix: str
) -> None:
    from jobs.client import JobClient
    from kernel.settings import SharedSettings

    record = _succeeded(store)
    # Its rows, and the bytes of its ids and results (its inputs went as they were scored).
    kept = [store.redis.strlen(k) for k in store.redis.scan_iter(store.key(record.id, "*:*"))]
    assert store.owner_usage("acme") == Usage(0, 4, sum(kept)) and len(kept) == 4
    deleted = store.cancel(record)
    assert deleted.status == SUCCEEDED and deleted.deleted is not None
    assert deleted.finished == record.finished
    assert store.rows_done(deleted) == 4
    for part in ("in", "ids", "out"):
        assert list(store.redis.scan_iter(store.key(record.id, f"{part}:*"))) == [], part
    assert store.owner_usage("acme") == Usage(0, 0, 0)
    client = JobClient(SharedSettings(redis_url=redis_durable.url, key_prefix=prefix))
    try:
        with pytest.raises(JobResultsDeleted):
            client.results(deleted)
    finally:
        client.close()
    # A chunk redelivered after that writes nothing back.
    assert store.finish_chunk(record.id, 0, {"predictions": [0, 0]}) is None
    assert result_keys(store, record.id) == []
    again = store.cancel(deleted)
    assert again.status == SUCCEEDED and again.deleted == deleted.deleted


def test_delete_of_a_failed_job_keeps_it_failed(store: JobStore) -> None:
    record = new_job(store, status=RUNNING)
    runner(store).fail(record.id, "chunk_crashed", "chunk 0 failed 3 times")
    after = store.cancel(store.get(record.id) or record)
    assert after.status == FAILED and after.error_code == "chunk_crashed"
    assert after.deleted is not None and after.status not in ACTIVE


# -- idempotency claims ----------------------------------------------------------------------


@pytest.fixture
def idempotency(redis: Redis, store: JobStore, prefix: str) -> Idempotency:
    return Idempotency(redis, store, prefix, TTL)


def test_one_claim_per_key_until_it_is_remembered_or_released(
    idempotency: Idempotency, store: JobStore
) -> None:
    first = idempotency.claim("acme", "k", "body-1")
    assert isinstance(first, IdempotencyClaim)
    assert idempotency.claim("acme", "k", "body-1") is None  # held: look again later
    assert isinstance(idempotency.claim("other-owner", "k", "body-1"), IdempotencyClaim)

    idempotency.release(first)  # the first submission failed: the key is free again
    second = idempotency.claim("acme", "k", "body-1")
    assert isinstance(second, IdempotencyClaim)
    record = new_job(store)
    # Claimed in one thread and remembered in another, as the gateway's worker threads do.
    remembering = threading.Thread(target=idempotency.remember, args=(second, record.id))
    remembering.start()
    remembering.join()
    earlier = idempotency.claim("acme", "k", "body-1")
    assert isinstance(earlier, JobRecord) and earlier.id == record.id
    with pytest.raises(IdempotencyConflict):
        idempotency.claim("acme", "k", "body-2")


class HeldClaim:
    """A JobClient whose key is claimed by another request for the first `busy` looks."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.looks = 0

    def claim(self, owner: str, key: str, body_sha256: str) -> str | None:
        self.looks += 1
        return None if self.looks <= self.busy else "claimed"


def test_the_gateway_waits_for_a_held_claim_and_gives_up_after_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.routes import jobs as routes

    monkeypatch.setattr(routes, "IDEMPOTENCY_POLL_SECONDS", 0.01)
    monkeypatch.setattr(routes, "IDEMPOTENCY_WAIT_SECONDS", 0.5)
    released = HeldClaim(busy=5)

    def submit(claim: str) -> str:
        return f"job made under {claim}"

    waited = asyncio.run(routes.submit_once(released, "acme", "k", "b", submit))  # type: ignore[arg-type]
    # The claim went straight to submit, in the same call: a new job, not an existing one.
    assert (waited, released.looks) == (("job made under claimed", False), 6)
    held = HeldClaim(busy=10**6)
    with pytest.raises(IdempotencyInProgress):
        asyncio.run(routes.submit_once(held, "acme", "k", "b", submit))  # type: ignore[arg-type]
    assert 1 < held.looks < 100  # it looked again while it waited, then gave up
