"""The per-owner counters (jobs.owner_usage) on a real redis-server: exact after a job succeeds,
fails, is cancelled queued or running, loses a worker to SIGKILL, and after its data expired
(which Redis does without running any code); concurrent submissions never pass a cap. And the
data's lifecycle: inputs deleted as they are scored, results kept for their retention, and a
delete that touches only the job's own keys. A gateway or worker that dies at each point that
matters (simulated by raising where it stops) leaves them exact, or set right by the next step:
the slot's provisional expiry, a redelivery, the slot holders' records read at a refusal.

"Exact" is checked against Redis itself: a job's share of bytes equals the bytes of the keys it
holds (STRLEN of its inputs, ids and results), and the owner's counters equal its shares' sum.
Each test has a key prefix of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from typing import Any

import pytest
from redis import Redis

import jobs.client
from devstack.processes import RedisServer, wait_until
from jobs.chunks import Rows
from jobs.client import JobClient
from jobs.errors import JobLimitExceeded, JobResultsDeleted
from jobs.owner_usage import Usage
from jobs.record import ACTIVE, CANCELLED, FAILED, SUCCEEDED, JobRecord, encoded
from jobs.store import RECORD_OUTLIVES_RESULTS_SECONDS, JobStore
from kernel.settings import SharedSettings
from registry.client import Registry
from registry.model import LoadedModel
from tests.integration.conftest import JOB_SETTINGS, WorkerFactory
from tests.integration.test_job_store import runner
from tests.integration.test_jobs import _slow_model, make_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OWNER = "acme"
FEATURES = [5.1, 3.5, 1.4, 0.2]

ClientFactory = Callable[..., JobClient]


@pytest.fixture
def make_client(redis_durable: RedisServer, prefix: str) -> Iterator[ClientFactory]:
    """JobClients on the test's prefix. Built without validation, so that a TTL can be shorter
    than the 60 s the settings allow: the data then really expires in Redis."""
    made: list[JobClient] = []

    def make(**overrides: Any) -> JobClient:
        values = {
            "redis_url": redis_durable.url,
            "key_prefix": prefix,
            "chunk_size": 10,
            "job_ttl_seconds": 600,
            "job_results_ttl_seconds": 600,
            **overrides,
        }
        client = JobClient(SharedSettings.model_construct(**values))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def chunks_of(rows: int, per_chunk: int = 10) -> Iterator[tuple[Rows, Rows]]:
    for start in range(0, rows, per_chunk):
        n = min(per_chunk, rows - start)
        yield [FEATURES] * n, [[f"row-{start + i}"] for i in range(n)]


def submit(client: JobClient, rows: int, owner: str = OWNER) -> JobRecord:
    return client.submit(
        owner=owner,
        model="iris",
        version=1,
        id_columns=["rid"],
        classes=[0, 1, 2],
        chunks=chunks_of(rows, client.settings.chunk_size),
    )


def held_bytes(store: JobStore, job_id: str, part: str = "*") -> int:
    """What the job's chunk keys (`in`, `ids`, `out`, or all) hold in Redis, measured there."""
    keys = store.redis.scan_iter(store.key(job_id, f"{part}:*"), count=1000)
    return sum(int(store.redis.strlen(k)) for k in keys)


def assert_exact(store: JobStore, jobs: list[JobRecord], owner: str = OWNER) -> Usage:
    """Each job's share of bytes is what its keys hold, and the owner's usage their sum."""
    shares = [store.usage.share(owner, job.id) or Usage(0, 0, 0) for job in jobs]
    for job, share in zip(jobs, shares, strict=True):
        assert share.bytes == held_bytes(store, job.id), job.id
    usage = store.owner_usage(owner)
    assert astuple(usage) == tuple(
        sum(column) for column in zip(*map(astuple, shares), strict=True)
    )
    return usage


# -- the counters through a job's life ------------------------------------------------------


def test_a_job_that_succeeds_keeps_its_rows_and_the_bytes_of_its_ids_and_results(
    make_client: ClientFactory,
) -> None:
    client = make_client(job_results_ttl_seconds=7200)
    store = client.store
    record = submit(client, 30)
    usage = assert_exact(store, [record])
    assert usage == Usage(1, 30, held_bytes(store, record.id)) and usage.bytes > 0
    chunk_runner = runner(store)
    assert chunk_runner.run(record.id, 0) == "done"
    # Scored: chunk 0's input is gone (its ids stay, for the results), and so are its bytes.
    assert store.redis.exists(store.key(record.id, "in:0")) == 0
    assert store.redis.exists(store.key(record.id, "ids:0")) == 1
    assert assert_exact(store, [record]).active == 1
    # Redelivered, the chunk is counted done before its (deleted) input is looked for.
    assert chunk_runner.run(record.id, 0) == "duplicate"
    assert [chunk_runner.run(record.id, n) for n in (1, 2)] == ["done", "done"]
    final = store.get(record.id)
    assert final is not None and final.status == SUCCEEDED
    assert held_bytes(store, record.id, "in") == 0
    assert assert_exact(store, [record]) == Usage(
        0, 30, held_bytes(store, record.id, "ids") + held_bytes(store, record.id, "out")
    )
    # Kept for the results' retention from its success, the record an hour longer.
    assert final.expires is not None and final.finished is not None
    assert final.expires == pytest.approx(final.finished + 7200, abs=2)
    for part in ("ids:0", "out:2"):
        assert 7190_000 < store.redis.pttl(store.key(record.id, part)) <= 7200_000, part
    record_ttl = store.redis.pttl(store.key(record.id))
    assert record_ttl > (7190 + RECORD_OUTLIVES_RESULTS_SECONDS) * 1000
    assert store.redis.exists(store.key(record.id, "done"), store.key(record.id, "deliveries")) == 0
    results = [ids for ids, _ in client.results(final)]
    assert results == [[[f"row-{n * 10 + i}"] for i in range(10)] for n in range(3)]
    assert runner(store).run(record.id, 1) == "skipped"  # no longer active: changes nothing
    assert assert_exact(store, [record]).rows == 30


def test_a_job_failed_after_its_deliveries_frees_its_slot_rows_and_bytes(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    store = client.store
    kept = submit(client, 10)
    record = submit(client, 20)
    assert runner(store).run(record.id, 0) == "done"
    for _ in range(3):  # three deliveries of chunk 1 that crashed their worker
        store.count_delivery(record.id, "1:0")
    assert runner(store).run(record.id, 1) == "failed"
    failed = store.get(record.id)
    assert failed is not None and failed.status == FAILED and failed.deleted is not None
    assert held_bytes(store, record.id) == 0  # a failed job's results are never read
    assert store.usage.share(OWNER, record.id) is None
    assert assert_exact(store, [kept, record]) == Usage(1, 10, held_bytes(store, kept.id))


def test_cancel_of_a_queued_and_of_a_running_job_frees_everything(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    store = client.store
    queued, running = submit(client, 20), submit(client, 20)
    assert assert_exact(store, [queued, running]).active == 2
    store.cancel(queued)
    assert assert_exact(store, [queued, running]) == Usage(1, 20, held_bytes(store, running.id))
    assert runner(store).run(running.id, 0) == "done"
    store.cancel(store.get(running.id) or running)
    assert assert_exact(store, [queued, running]) == Usage(0, 0, 0)
    # A chunk that was running meanwhile stores nothing and counts for nothing.
    assert store.finish_chunk(running.id, 1, {"predictions": [0] * 10}) is None
    assert assert_exact(store, [queued, running]) == Usage(0, 0, 0)
    assert held_bytes(store, queued.id) == held_bytes(store, running.id) == 0


def test_jobs_aged_past_their_ttl_free_their_share_of_the_caps(
    make_client: ClientFactory, redis: Redis, prefix: str
) -> None:
    client = make_client(job_ttl_seconds=2, max_running_jobs_per_owner=3)
    store = client.store
    old = [submit(client, 10) for _ in range(3)]
    with pytest.raises(
        JobLimitExceeded, match="3 jobs are queued or running for this owner; the limit is 3"
    ):
        submit(client, 10)
    counters = f"{prefix}owner:{OWNER}:usage"
    assert redis.hmget(counters, "active", "rows") == [b"3", b"30"]
    wait_until(
        lambda: redis.exists(*(store.key(job.id) for job in old)) == 0, 10, "the jobs' expiry"
    )
    assert held_bytes(store, old[0].id) == 0  # Redis expired their data, running no code:
    assert redis.hmget(counters, "active", "rows") == [b"3", b"30"]  # the counters stand
    new = submit(client, 10)  # which the submission's pruning sets right
    assert redis.hlen(f"{prefix}owner:{OWNER}:shares") == 1
    assert assert_exact(store, [*old, new]) == Usage(1, 10, held_bytes(store, new.id))


def test_a_succeeded_jobs_share_ends_with_its_results_retention(
    make_client: ClientFactory,
) -> None:
    client = make_client(job_results_ttl_seconds=2)
    store = client.store
    record = submit(client, 10)
    assert runner(store).run(record.id, 0) == "done"
    assert assert_exact(store, [record]).rows == 10
    wait_until(lambda: held_bytes(store, record.id) == 0, 10, "the results' expiry")
    assert store.owner_usage(OWNER) == Usage(0, 0, 0)
    # The record outlives its results: it says when they went, and they answer 410.
    kept = store.get(record.id)
    assert kept is not None and kept.status == SUCCEEDED and kept.deleted is None
    assert kept.public(store.rows_done(kept))["expires"] == kept.expires
    with pytest.raises(JobResultsDeleted, match="expired"):
        client.results(kept)


def test_each_cap_refuses_with_a_message_naming_it_and_keeps_nothing(
    make_client: ClientFactory,
) -> None:
    client = make_client(max_stored_rows_per_owner=25)
    store = client.store
    first = submit(client, 20)
    with pytest.raises(JobLimitExceeded, match="20 stored rows .* this job's 10 .* limit of 25"):
        submit(client, 10)
    usage = assert_exact(store, [first])
    assert usage == Usage(1, 20, held_bytes(store, first.id))
    assert len(list(store.redis.scan_iter(f"{store.prefix}job:*:in:*"))) == 2  # the first's
    small = make_client(max_stored_bytes_per_owner=usage.bytes + 100)
    with pytest.raises(JobLimitExceeded, match=f"limit of {usage.bytes + 100} stored bytes"):
        submit(small, 10)
    assert assert_exact(store, [first]) == usage
    assert len(list(store.redis.scan_iter(f"{store.prefix}job:*:in:*"))) == 2


def _concurrently(clients: int, submission: Callable[[], JobRecord]) -> list[JobRecord | None]:
    barrier = threading.Barrier(clients)

    def one(_: int) -> JobRecord | None:
        barrier.wait()
        try:
            return submission()
        except JobLimitExceeded:
            return None

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def test_concurrent_submissions_at_the_cap_never_pass_it(
    make_client: ClientFactory, redis: Redis, prefix: str
) -> None:
    slots = make_client(max_running_jobs_per_owner=4)
    made = _concurrently(16, lambda: submit(slots, 10))
    accepted = [r for r in made if r is not None]
    assert len(accepted) == 4  # each slot reserved and checked in one step
    assert assert_exact(slots.store, accepted).active == 4

    rows = make_client(max_running_jobs_per_owner=100, max_stored_rows_per_owner=100)
    counters = f"{prefix}owner:other:usage"
    highest = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal highest
        while not stop.is_set():
            highest = max(highest, int(redis.hget(counters, "rows") or 0))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        made = _concurrently(12, lambda: submit(rows, 30, owner="other"))
    finally:
        stop.set()
        watcher.join()
    accepted = [r for r in made if r is not None]
    assert len(accepted) == 3 and highest <= 100  # first come, first served
    assert assert_exact(rows.store, accepted, "other").rows == 30 * len(accepted)


# -- the data's lifecycle -------------------------------------------------------------------


def test_a_delete_removes_only_the_jobs_own_keys(make_client: ClientFactory, redis: Redis) -> None:
    client = make_client()
    store = client.store
    record = submit(client, 20)  # chunks 0 and 1
    sentinels = [
        store.key(record.id, "in:2"),  # a chunk the job does not have
        store.key(record.id, "in:0:ref"),
        store.key(record.id + "0", "in:0"),  # another job whose id starts with this one's
        store.key(record.id[:-1], "in:0"),
        "x" + store.key(record.id, "in:0"),  # another prefix
        store.key(record.id, "in:0").removeprefix(store.prefix),
    ]
    for key in sentinels:
        redis.set(key, b"not the job's", ex=600)
    assert held_bytes(store, record.id, "in") > 0 and held_bytes(store, record.id, "ids") > 0
    store.cancel(record)
    for part in ("in", "ids", "out"):
        for n in (0, 1):
            assert redis.exists(store.key(record.id, f"{part}:{n}")) == 0, (part, n)
    assert [redis.get(key) for key in sentinels] == [b"not the job's"] * len(sentinels)
    redis.delete(*sentinels)


# -- a process that dies at a chosen point --------------------------------------------------


class Died(BaseException):
    """The process died here: nothing after this point runs (no `except Exception` sees it)."""


def died(*args: Any, **kwargs: Any) -> None:
    raise Died


def expiry_ms(store: JobStore, job_id: str, owner: str = OWNER) -> float | None:
    return store.redis.zscore(store.usage.keys(owner)[2], job_id)


def test_a_gateway_that_dies_mid_upload_holds_the_slot_only_provisionally(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not raising: before the provisional expiry existed, this shows the slot held for the TTL.
    monkeypatch.setattr(jobs.client, "PROVISIONAL_SECONDS", 1.0, raising=False)
    client = make_client(max_running_jobs_per_owner=1)
    store = client.store

    def upload_then_die() -> Iterator[tuple[Rows, Rows]]:
        yield from chunks_of(20)
        raise Died

    started = time.time()
    with monkeypatch.context() as patch, pytest.raises(Died):
        patch.setattr(client, "_discard_quietly", died)  # dead: nothing is cleaned up
        client.submit(
            owner=OWNER, model="iris", version=1, id_columns=["rid"], classes=None,
            chunks=upload_then_die(),
        )  # fmt: skip
    [dead] = [job.decode() for job in store.redis.hkeys(store.usage.keys(OWNER)[1])]
    assert store.get(dead) is None and store.usage.share(OWNER, dead) == Usage(1, 0, 0)
    until = expiry_ms(store, dead)
    assert until is not None and until <= (started + 1.5) * 1000  # not the job's 600 s
    # Held meanwhile (a submission without a record is never taken for a stopped job) ...
    with pytest.raises(JobLimitExceeded, match="1 jobs are queued or running"):
        submit(client, 10)
    time.sleep(max(0.0, until / 1000 - time.time()) + 0.05)
    # ... and free once the provisional expiry passed.
    record = submit(client, 10)
    assert store.usage.share(OWNER, dead) is None
    assert assert_exact(store, [record]) == Usage(1, 10, held_bytes(store, record.id))


def test_an_upload_slower_than_the_provisional_expiry_holds_one_slot_or_is_refused(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs.client, "PROVISIONAL_SECONDS", 0.3)
    other = make_client()
    store = other.store
    others: list[JobRecord] = []

    def submit_slowly(client: JobClient, owner: str) -> JobRecord:
        def slow() -> Iterator[tuple[Rows, Rows]]:
            yield from chunks_of(10)
            time.sleep(0.5)  # past the provisional expiry: the next submission drops its share
            others.append(submit(other, 10, owner))
            assert store.owner_usage(owner).active == 1  # the other's slot only
            yield from chunks_of(10)

        return client.submit(
            owner=owner, model="iris", version=1, id_columns=["rid"], classes=None, chunks=slow()
        )

    record = submit_slowly(make_client(max_running_jobs_per_owner=2), OWNER)
    # It took its slot back, once, and holds it until its `expires`.
    assert store.usage.share(OWNER, record.id) == Usage(1, 20, held_bytes(store, record.id))
    assert assert_exact(store, [record, *others]).active == 2
    assert record.expires is not None and expiry_ms(store, record.id) == int(record.expires * 1000)
    # With the cap reached meanwhile, it is refused and leaves nothing.
    with pytest.raises(JobLimitExceeded, match="1 jobs are queued or running"):
        submit_slowly(make_client(max_running_jobs_per_owner=1), "slow")
    usage = assert_exact(store, [others[-1]], "slow")
    assert usage == Usage(1, 10, held_bytes(store, others[-1].id))
    assert store.redis.hlen(store.usage.keys("slow")[1]) == 1
    assert len(list(store.redis.scan_iter(f"{store.prefix}job:*:in:*"))) == 4  # the 3 jobs'


def test_a_result_stored_by_a_worker_that_died_before_counting_it_is_counted_once(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    store = client.store
    record = submit(client, 20)
    # The first delivery stored chunk 0's result and died before it counted.
    assert store.chunks.write_result(record.id, 0, {"predictions": [1] * 10}) > 0
    assert runner(store).run(record.id, 0) == "done"  # its SET NX stores nothing
    assert store.redis.exists(store.key(record.id, "in:0")) == 0
    assert assert_exact(store, [record]).bytes == held_bytes(store, record.id)
    assert runner(store).run(record.id, 1) == "done"
    assert assert_exact(store, [record]) == Usage(0, 20, held_bytes(store, record.id))


def test_a_worker_that_dies_at_a_scored_inputs_delete_leaves_the_bytes_exact(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    store = client.store
    record = submit(client, 30)
    # Dead as soon as the input went, before anything else ran: its DEL and the count of its
    # bytes are one script, so there is no such point (there was one, before add_bytes).
    with monkeypatch.context() as patch, contextlib.suppress(Died):
        patch.setattr(store.usage, "add_bytes", died)
        runner(store).run(record.id, 0)
    assert store.redis.exists(store.key(record.id, "in:0")) == 0
    assert_exact(store, [record])
    # Dead between counting chunk 1 and deleting its input: the input stays, and counts.
    with monkeypatch.context() as patch:
        patch.setattr(store.usage, "delete_counted", died)
        with pytest.raises(Died):
            runner(store).run(record.id, 1)
    assert store.redis.exists(store.key(record.id, "in:1")) == 1
    assert_exact(store, [record])
    assert [runner(store).run(record.id, n) for n in (1, 2)] == ["duplicate", "done"]
    assert assert_exact(store, [record]) == Usage(0, 30, held_bytes(store, record.id))


def promise_kept(store: JobStore, job_id: str) -> bool:
    """The job is still active, or every data key it has lasts as long as its `expires`."""
    record = store.get(job_id)
    assert record is not None and record.expires is not None
    if record.status in ACTIVE:
        return True
    keys = list(store.redis.scan_iter(store.key(job_id, "*:*")))
    return bool(keys) and all(
        store.redis.pttl(key) >= (record.expires - time.time()) * 1000 - 2000 for key in keys
    )


@pytest.mark.parametrize("dies_in", ["keep_results", "move"])
def test_a_worker_that_dies_as_it_finishes_a_job_never_leaves_results_that_expire_early(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    client = make_client(job_results_ttl_seconds=7200)
    store = client.store
    record = submit(client, 20)
    assert runner(store).run(record.id, 0) == "done"
    with monkeypatch.context() as patch:
        if dies_in == "move":
            patch.setattr(store, "_move", died)
        else:
            patch.setattr(store.chunks, "keep_results", died)
        with pytest.raises(Died):
            runner(store).run(record.id, 1)  # the last chunk: it counted, then finished the job
    assert promise_kept(store, record.id)
    # The last chunk is delivered again (its message was never acknowledged): it finishes.
    assert runner(store).run(record.id, 1) == "duplicate"
    final = store.get(record.id)
    assert final is not None and final.status == SUCCEEDED and promise_kept(store, record.id)
    assert final.expires is not None and expiry_ms(store, record.id) == int(final.expires * 1000)
    assert assert_exact(store, [record]) == Usage(0, 20, held_bytes(store, record.id))


def test_results_missing_a_chunk_answer_410_before_the_stream_starts(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    store = client.store
    record = submit(client, 20)
    assert [runner(store).run(record.id, n) for n in (0, 1)] == ["done", "done"]
    final = store.get(record.id)
    assert final is not None and final.status == SUCCEEDED
    store.redis.delete(store.key(record.id, "out:1"))  # expired early (a version before this)
    with pytest.raises(JobResultsDeleted, match="some of its results are gone"):
        client.results(final)


def test_jobs_an_older_version_stopped_give_their_slots_back_at_the_next_refusal(
    make_client: ClientFactory,
) -> None:
    client = make_client(max_running_jobs_per_owner=3)
    store = client.store
    finished, cancelled, queued = (submit(client, 10) for _ in range(3))
    # Moved as the versions before shares did: the status set, the share never told. An
    # older worker finished one; an older gateway cancelled one and deleted its data.
    store.redis.hset(store.key(finished.id), mapping={"status": encoded(SUCCEEDED)})
    cancel = {"status": encoded(CANCELLED), "deleted": encoded(time.time())}
    store.redis.hset(store.key(cancelled.id), mapping=cancel)
    store.chunks.delete(cancelled.id, cancelled.chunks)
    assert store.owner_usage(OWNER).active == 3
    new = submit(client, 10)  # refused for a slot, the reserve first checks the holders
    assert store.usage.share(OWNER, finished.id) == Usage(0, 10, held_bytes(store, finished.id))
    assert store.usage.share(OWNER, cancelled.id) is None
    newer = submit(client, 10)
    assert assert_exact(store, [finished, cancelled, queued, new, newer]).active == 3
    with pytest.raises(JobLimitExceeded, match="3 jobs are queued or running"):
        submit(client, 10)  # the queued job keeps its slot
    assert store.usage.share(OWNER, queued.id) == Usage(1, 10, held_bytes(store, queued.id))


# -- a worker killed mid-job ----------------------------------------------------------------


def test_a_worker_killed_mid_job_leaves_the_counters_exact(
    registry: Registry,
    iris: dict[int, LoadedModel],
    worker_factory: WorkerFactory,
    make_client: ClientFactory,
    prefix: str,
) -> None:
    name = _slow_model(registry)
    chunk = int(JOB_SETTINGS["MODELGATE_CHUNK_SIZE"])
    client = make_client(chunk_size=chunk)
    store = client.store
    worker = worker_factory(key_prefix=prefix)
    rows = make_rows(60_000, seed=61).tolist()
    record = client.submit(
        owner=OWNER,
        model=name,
        version=1,
        id_columns=["rid"],
        classes=[0, 1, 2],
        chunks=(
            (rows[s : s + chunk], [[f"r{i}"] for i in range(s, s + chunk)])
            for s in range(0, len(rows), chunk)
        ),
    )
    assert assert_exact(store, [record]).active == 1
    wait_until(lambda: store.chunks_done(record.id) > 0, 120, "the first chunk", interval=0.05)
    # Every pool child at once, mid-job: one alone could be between two tasks on a loaded
    # machine (seen once), and its kill would not cut a chunk. The status does not change.
    for child in worker.pool_children():
        os.kill(child, signal.SIGKILL)
    # Only the slot here: a result may be stored and not yet counted (its bytes are checked
    # once the job is done).
    assert store.owner_usage(OWNER).active == 1

    def finished() -> bool:
        job = store.get(record.id)
        return job is not None and job.status not in ("queued", "running")

    wait_until(finished, 240, "the job", interval=0.2)
    final = store.get(record.id)
    assert final is not None and final.status == SUCCEEDED, final
    # The kill landed on a running chunk, which was delivered again.
    assert b"WorkerLostError" in worker.log_path.read_bytes()
    usage = assert_exact(store, [record])
    assert (usage.active, usage.rows) == (0, 60_000) and usage.bytes > 0
    assert sum(len(result["predictions"]) for _, result in client.results(final)) == 60_000
    worker.stop()
