"""Metrics and logs of real processes: a gateway and a worker on a Redis of their own.

The gateway's metrics port after real requests (route templates, the version served, the
dependency gauges through a Redis outage); the worker's /metrics after a real job whose chunk
was delivered twice; and the request log lines, on stdout and in the rotating log file.
"""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.processes import Gateway, RedisServer, Worker, free_port, wait_until
from jobs.celery_app import queue_key
from kernel.settings import SharedSettings
from registry.model import LoadedModel
from tests.integration.conftest import KEY_PREFIX, GatewayFactory, WorkerFactory, make_key
from worker.queue_length import QueueLengthCollector

pytestmark = pytest.mark.integration

PREDICT = "/v1/models/{model}/predict"
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
CHUNK_ROWS = 100


@dataclass
class Stack:
    redis: RedisServer
    gateway: Gateway
    metrics_url: str
    log_file: Path
    api_key: str


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    gateway_factory: GatewayFactory,
    iris: dict[int, LoadedModel],
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("monitoring")
    redis = RedisServer(workdir / "redis", "durable")
    redis.start()
    key = make_key(redis.url, owner="metrics-owner")
    metrics_port = free_port()
    log_file = workdir / "gateway.log"
    gateway = gateway_factory(
        api_key=key,
        redis_url=redis.url,
        cache_url="",
        metrics_port=str(metrics_port),
        dependency_check_seconds="0.3",
        log_file=str(log_file),
        chunk_size=str(CHUNK_ROWS),
        drain_seconds="0",
    )
    try:
        yield Stack(redis, gateway, f"http://127.0.0.1:{metrics_port}/metrics", log_file, key)
    finally:
        gateway.stop()
        redis.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in a scrape (labels in any order), or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def scrape(url: str) -> str:
    return httpx.get(url, timeout=5).text


def requests_total(metrics: str, status: str, route: str = PREDICT, method: str = "POST") -> float:
    labels = {"route": route, "method": method, "status": status}
    return sample(metrics, "modelgate_http_requests_total", **labels) or 0.0


def test_requests_are_counted_by_route_template_with_the_version_served(stack: Stack) -> None:
    http = stack.gateway.http
    before = requests_total(scrape(stack.metrics_url), "200")
    answers = [http.post("/v1/models/iris/predict", json=ROW) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert http.post("/v1/models/iris/predict", json={"instances": [[1.0]]}).status_code == 422
    assert http.get("/no/such/path/42").status_code == 404

    metrics = scrape(stack.metrics_url)
    assert requests_total(metrics, "200") == before + 3
    assert requests_total(metrics, "422") >= 1
    assert requests_total(metrics, "404", route="other", method="GET") >= 1
    assert "/v1/models/iris/predict" not in metrics and "/no/such/path" not in metrics
    assert (sample(metrics, "modelgate_http_request_seconds_count", route=PREDICT) or 0) >= 4
    assert sample(metrics, "modelgate_http_request_seconds_bucket", route=PREDICT, le="5.0")

    version = answers[0].json()["version"]
    assert sample(metrics, "modelgate_model_version", model="iris") == version
    assert sample(metrics, "modelgate_model_ready", model="iris") == 1


def test_request_logs_name_the_request_key_owner_model_and_version(stack: Stack) -> None:
    request_id = f"mon-{uuid.uuid4().hex[:12]}"
    answer = stack.gateway.http.post(
        "/v1/models/iris/predict", json=ROW, headers={"X-Request-ID": request_id}
    )
    assert answer.status_code == 200

    def logged(path: Path) -> dict[str, object] | None:
        for line in path.read_text().splitlines():
            if request_id in line and line.startswith("{"):
                entry: dict[str, object] = json.loads(line)
                if entry["message"] == "request":
                    return entry
        return None

    wait_until(lambda: logged(stack.log_file) is not None, 5, "the request's log line")
    from_file, from_stdout = logged(stack.log_file), logged(stack.gateway.log_path)
    assert from_file is not None and from_file == from_stdout
    assert from_file["request_id"] == request_id
    assert from_file["route"] == PREDICT and from_file["status"] == 200
    assert from_file["owner"] == "metrics-owner"
    assert f"_{from_file['api_key_id']}_" in stack.api_key  # mg_<id>_<secret>: the id only
    assert from_file["model"] == "iris"
    assert from_file["model_version"] == str(answer.json()["version"])
    assert stack.api_key not in stack.log_file.read_text()


def test_dependency_gauges_follow_a_redis_outage(stack: Stack) -> None:
    def up(dependency: str) -> float | None:
        return sample(scrape(stack.metrics_url), "modelgate_dependency_up", dependency=dependency)

    wait_until(lambda: up("redis") == 1 and up("registry") == 1, 5, "dependencies up")
    assert up("cache") == 1  # the cache shares the durable Redis here
    stack.redis.stop(signal.SIGKILL)
    try:
        wait_until(lambda: up("redis") == 0, 10, "redis reported down")
        assert up("cache") == 0 and up("registry") == 1
    finally:
        stack.redis.start()
    wait_until(lambda: up("redis") == 1, 10, "redis reported up again")


def test_queue_length_collector_reads_the_list_and_counts_failed_reads(
    redis_durable: RedisServer,
) -> None:
    key = f"{KEY_PREFIX}monitoring-queue-{uuid.uuid4().hex[:8]}"
    with Redis.from_url(redis_durable.url) as redis:
        redis.lpush(key, "a", "b", "c")
        try:
            collector = QueueLengthCollector(redis, key)
            families = {f.name: f for f in collector.collect()}
            assert families["modelgate_queue_length"].samples[0].value == 3
            assert families["modelgate_queue_length_errors"].samples[0].value == 0
        finally:
            redis.delete(key)
    # As the worker's own client: one attempt, no retries.
    closed = Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    collector = QueueLengthCollector(closed, key)
    families = {f.name: f for f in collector.collect()}
    assert "modelgate_queue_length" not in families  # no made-up length
    assert families["modelgate_queue_length_errors"].samples[0].value == 1


def test_worker_metrics_after_a_job_whose_chunk_came_twice(
    stack: Stack, worker_factory: WorkerFactory
) -> None:
    """With no worker yet, the job's first chunk message is doubled in the queue, as a
    redelivery would; then one worker (one process, so in order) runs them all."""
    settings = SharedSettings(redis_url=stack.redis.url, key_prefix=KEY_PREFIX)
    queue = queue_key(settings)
    rows = "\n".join("5.1,3.5,1.4,0.2" for _ in range(250))
    body = f"sepal_length,sepal_width,petal_length,petal_width\n{rows}\n".encode()
    with Redis.from_url(stack.redis.url) as redis:
        redis.delete(queue)  # nothing left over from an earlier run of this module
        accepted = stack.gateway.http.post(
            "/v1/models/iris/jobs", content=body, headers={"content-type": "text/csv"}
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        messages = redis.llen(queue)
        assert messages == 3  # 250 rows in chunks of 100; the job stays active after chunk 0
        redis.rpush(queue, redis.lindex(queue, -1))  # the next one out, once more

    worker: Worker = worker_factory(
        redis_url=stack.redis.url, worker_concurrency="1", chunk_size=str(CHUNK_ROWS)
    )
    url = f"http://127.0.0.1:{worker.health_port}/metrics"
    try:
        wait_until(
            lambda: stack.gateway.http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded",
            60,
            f"job {job_id}",
            interval=0.2,
        )
        metrics = scrape(url)
        assert sample(metrics, "modelgate_worker_rows_total") == 250
        assert sample(metrics, "modelgate_worker_chunks_total") == messages
        assert sample(metrics, "modelgate_worker_redeliveries_total") == 1
        assert sample(metrics, "modelgate_worker_duplicate_chunks_total") == 1
        assert (sample(metrics, "modelgate_worker_task_seconds_count") or 0) == messages
        assert sample(metrics, "modelgate_queue_length") == 0
        assert sample(metrics, "modelgate_queue_length_errors_total") == 0
    finally:
        worker.stop()
