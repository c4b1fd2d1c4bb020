"""SIGTERM to a worker mid-job: its running chunks finish or go back to the queue, none waits
for the visibility timeout, and another worker completes the job with every row exactly once.

Two ways the signal arrives: to the main process only (Kubernetes and `docker stop` signal the
container's PID 1), and to the whole process group (`make up`, systemd's default), in
which case the pool processes die at once and their chunks must be requeued.

The job runs on its own Redis, so no other test's worker can take its chunks, and with a
visibility timeout far longer than the test: a chunk left unacknowledged would never come back.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from devstack.processes import Gateway, RedisServer
from registry.client import Registry
from registry.model import LoadedModel
from tests.integration.conftest import (
    JOB_SETTINGS,
    KEY_PREFIX,
    GatewayFactory,
    WorkerFactory,
    make_key,
)
from tests.integration.test_jobs import (
    _exactly_once,
    _slow_model,
    csv_body,
    make_rows,
    submit,
    wait_done,
    wait_first_chunk,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROWS = 50_000  # ten chunks: a signal after the first lands mid-job with chunks left
CHUNK_ROWS = int(JOB_SETTINGS["MODELGATE_CHUNK_SIZE"])
VISIBILITY_SECONDS = "600"
QUEUE = f"{KEY_PREFIX}modelgate"
UNACKED = f"{KEY_PREFIX}unacked"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path / "redis", "durable")
    redis.start()
    yield redis
    redis.stop()


def _rows_done(gateway: Gateway, job_id: str) -> int:
    return int(gateway.http.get(f"/v1/jobs/{job_id}").json()["rows_done"])


@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_mid_job_finishes_or_requeues_and_the_job_completes_exactly(
    target: str,
    own_redis: RedisServer,
    registry: Registry,
    gateway_factory: GatewayFactory,
    worker_factory: WorkerFactory,
    iris: dict[int, LoadedModel],
) -> None:
    name = _slow_model(registry)
    settings = {"redis_url": own_redis.url, "visibility_timeout_seconds": VISIBILITY_SECONDS}
    gateway = gateway_factory(
        api_key=make_key(own_redis.url),
        models=f"{name}@production",
        max_job_rows=str(ROWS),
        cache_url="",
        **settings,
    )
    first = worker_factory(**settings)
    accepted = submit(gateway, csv_body(make_rows(ROWS, seed=41)), model=name)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    wait_first_chunk(gateway, job_id)

    signalled = time.monotonic()
    at_signal = _rows_done(gateway, job_id)
    if target == "main process":
        os.kill(first.pid, signal.SIGTERM)
    else:
        first.send_signal(signal.SIGTERM)
    assert first.proc is not None
    first.proc.wait(60)
    stopped_after = time.monotonic() - signalled
    at_exit = _rows_done(gateway, job_id)
    log = first.log_path.read_text(errors="replace")

    # Nothing is left unacknowledged: every chunk not stored is back in the queue now.
    with Redis.from_url(own_redis.url) as client:
        unacked = client.hlen(UNACKED)
        queued = client.llen(QUEUE)
    chunks_left = ROWS // CHUNK_ROWS - at_exit // CHUNK_ROWS
    print(
        f"\nSIGTERM to the worker's {target}: stopped in {stopped_after:.1f} s; rows done "
        f"{at_signal} at the signal, {at_exit} at exit; {queued} chunks queued, {unacked} unacked"
    )
    assert unacked == 0
    assert 0 < at_exit < ROWS, "the signal must land mid-job"
    concurrency = 2  # the test workers' MODELGATE_WORKER_CONCURRENCY
    if target == "main process":
        # Warm: the pool processes finished what they were running, none was killed.
        assert "WorkerLostError" not in log
        # Every chunk not stored is queued again. On a loaded machine a chunk finished during
        # the warm shutdown has been seen stored and queued again too (twice in four full runs,
        # one chunk each): delivery is at least once, and the repeat is skipped
        # (_exactly_once below).
        assert chunks_left <= queued <= chunks_left + concurrency
        # The pool children got the signal too: one may stop between storing its chunk and
        # acknowledging it, which puts the chunk back once more (at-least-once delivery). Nothing
        # may be missing; a repeat is skipped, as _exactly_once checks below.
        assert chunks_left <= queued <= chunks_left + concurrency

    second = worker_factory(**settings)
    restarted = time.monotonic()
    status = wait_done(gateway, job_id, timeout=120)
    print(f"another worker finished the job {time.monotonic() - restarted:.1f} s after its start")
    assert status["status"] == "succeeded", status
    _exactly_once(gateway, job_id, ROWS)
    second.stop()
