"""Races around a job's life, end to end: concurrent idempotent submissions, cancel while chunks
run, DELETE of a finished job. Each test has a key prefix of its own, so that no worker started
by another test takes its chunks and no other job counts against its owner's caps.
"""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from redis import Redis

from devstack.processes import Gateway, RedisServer, wait_until
from gateway.guard.keys import SCOPES, KeyStore
from registry.client import Registry
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory, WorkerFactory
from tests.integration.test_jobs import _slow_model, csv_body, make_rows, submit, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@dataclass(frozen=True)
class Tenant:
    """A key prefix of the test's own and an API key of one owner under it."""

    prefix: str
    api_key: str


def new_tenant(redis_url: str) -> Tenant:
    prefix = f"mgrace{secrets.token_hex(3)}:"
    with Redis.from_url(redis_url) as redis:
        _, value = KeyStore(redis, prefix).create(
            name="races",
            owner="races",
            scopes=SCOPES,
            predict_limit="100000/minute",
            reads_limit="100000/minute",
            jobs_limit="100000/minute",
        )
    return Tenant(prefix, value)


def start_gateway(factory: GatewayFactory, tenant: Tenant, **settings: str) -> Gateway:
    gateway = factory(api_key=tenant.api_key, key_prefix=tenant.prefix, **settings)
    wait_until(lambda: gateway.http.get("/v1/models").status_code == 200, 10, "the new key")
    return gateway


def job_keys(redis_url: str, tenant: Tenant, job_id: str, part: str) -> list[bytes]:
    with Redis.from_url(redis_url) as redis:
        return list(redis.scan_iter(f"{tenant.prefix}job:{job_id}:{part}:*"))


def test_concurrent_submissions_with_one_idempotency_key_make_one_job(
    gateway_factory: GatewayFactory, redis_durable: RedisServer, iris: dict[int, LoadedModel]
) -> None:
    tenant = new_tenant(redis_durable.url)
    # No worker on this prefix: every job made stays queued and holds one of the 4 slots.
    gateway = start_gateway(gateway_factory, tenant, max_running_jobs_per_owner="4")
    body = csv_body(make_rows(3000, seed=51))
    clients = 20
    barrier = threading.Barrier(clients)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=gateway.url, timeout=120) as http:
            barrier.wait()
            return http.post(
                "/v1/models/iris/jobs",
                content=body,
                params={"id_columns": "rid"},
                headers={
                    "X-API-Key": tenant.api_key,
                    "content-type": "text/csv",
                    "Idempotency-Key": "nightly-batch",
                },
            )

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(post, range(clients)))

    assert [a.status_code for a in answers] == [202] * clients, [a.text for a in answers]
    jobs = {a.json()["job_id"] for a in answers}
    assert len(jobs) == 1, jobs
    assert sorted(a.json()["existing"] for a in answers) == [False] + [True] * (clients - 1)
    listed = [j["job_id"] for j in gateway.http.get("/v1/jobs").json()["jobs"]]
    assert listed == list(jobs)

    # The same key with another body is still refused; without a key a new job is made.
    other = submit(gateway, csv_body(make_rows(10)), headers={"Idempotency-Key": "nightly-batch"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    fresh = submit(gateway, body)
    assert fresh.status_code == 202 and fresh.json()["job_id"] not in jobs


def test_cancel_while_chunks_run_freezes_the_job_and_frees_its_slot(
    registry: Registry,
    gateway_factory: GatewayFactory,
    worker_factory: WorkerFactory,
    redis_durable: RedisServer,
) -> None:
    name = _slow_model(registry)
    tenant = new_tenant(redis_durable.url)
    gateway = start_gateway(
        gateway_factory,
        tenant,
        models=f"{name}@production",
        chunk_size="200",
        max_running_jobs_per_owner="1",
    )
    # A fresh worker of two pool children: each loads the model on its first chunk, so the
    # cancel lands while both have read their chunk's rows and not yet stored a result.
    worker = worker_factory(key_prefix=tenant.prefix)
    accepted = submit(gateway, csv_body(make_rows(4000, seed=52)), model=name)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.json()["rows"] == 4000  # 20 chunks
    wait_until(
        lambda: gateway.http.get(f"/v1/jobs/{job_id}").json()["status"] == "running",
        60,
        "the first chunk",
        interval=0.02,
    )
    cancelled = gateway.http.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    frozen = cancelled.json()["rows_done"]

    # Until every chunk task is through (the ones in flight at the cancel included) ...
    with Redis.from_url(redis_durable.url) as redis:
        wait_until(
            lambda: (
                redis.llen(f"{tenant.prefix}modelgate") == 0
                and redis.hlen(f"{tenant.prefix}unacked") == 0
            ),
            120,
            "the queue to drain",
        )
    # ... and a while after: the job stays cancelled and its progress never moves.
    for _ in range(5):
        status = gateway.http.get(f"/v1/jobs/{job_id}").json()
        assert (status["status"], status["rows_done"]) == ("cancelled", frozen), status
        time.sleep(0.4)
    assert job_keys(redis_durable.url, tenant, job_id, "out") == []
    assert job_keys(redis_durable.url, tenant, job_id, "in") == []
    # The cancelled job holds none of the owner's one running-job slot.
    again = submit(gateway, csv_body(make_rows(10)), model=name)
    assert again.status_code == 202, again.text
    worker.stop()


def test_delete_of_a_succeeded_job_keeps_its_status_and_frees_its_rows(
    gateway_factory: GatewayFactory,
    worker_factory: WorkerFactory,
    redis_durable: RedisServer,
    iris: dict[int, LoadedModel],
) -> None:
    tenant = new_tenant(redis_durable.url)
    # Room for one 30-row job's data, not two.
    gateway = start_gateway(gateway_factory, tenant, max_stored_rows_per_owner="50")
    worker = worker_factory(key_prefix=tenant.prefix)
    body = csv_body(make_rows(30, seed=53))
    first = submit(gateway, body)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    assert wait_done(gateway, job_id)["status"] == "succeeded"
    assert submit(gateway, body).status_code == 429  # 60 rows stored would pass 50

    deleted = gateway.http.delete(f"/v1/jobs/{job_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "succeeded" and deleted.json()["rows_done"] == 30
    assert deleted.json()["deleted"] is not None
    status = gateway.http.get(f"/v1/jobs/{job_id}").json()
    assert status["status"] == "succeeded" and status["finished"] is not None
    # Its inputs and results are gone, and so is its share of the owner's stored rows.
    for part in ("in", "ids", "out"):
        assert job_keys(redis_durable.url, tenant, job_id, part) == [], part
    results = gateway.http.get(f"/v1/jobs/{job_id}/results")
    assert results.status_code == 410 and results.json()["error"]["code"] == "job_results_deleted"
    second = submit(gateway, body)
    assert second.status_code == 202, second.text
    assert wait_done(gateway, second.json()["job_id"])["status"] == "succeeded"
    worker.stop()
