"""modelgate_client against a live gateway and Celery worker (no mocks): predictions, models,
jobs from a path, a DataFrame and an iterator, and the typed errors of real answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import modelgate_client as mg
from devstack.processes import Gateway, RedisServer, Worker, free_port
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory, WorkerFactory, known, make_key
from tests.integration.test_jobs import FEATURES, csv_body, make_rows

ROWS = make_rows(40, seed=21)


@pytest.fixture(scope="module")
def worker(worker_factory: WorkerFactory) -> Worker:
    return worker_factory()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[mg.Client]:
    with mg.Client(gateway.url, gateway.api_key) as opened:
        yield opened


@pytest.fixture(scope="module")
def idle(
    gateway_factory: GatewayFactory, workdir: Path, iris: dict[int, LoadedModel]
) -> Iterator[Gateway]:
    """A gateway on its own durable Redis, which no worker serves: its jobs stay queued."""
    redis = RedisServer(workdir / "redis-client-idle", "durable")
    redis.start()
    try:
        started = gateway_factory(redis_url=redis.url)
        yield started
        started.stop()
    finally:
        redis.stop()


def expected(iris: dict[int, LoadedModel], rows: np.ndarray) -> tuple[list, np.ndarray]:
    model = iris[1].estimator
    return model.predict(rows).tolist(), model.predict_proba(rows)


def test_predict_rows_records_and_frames(client: mg.Client, iris: dict[int, LoadedModel]) -> None:
    labels, proba = expected(iris, ROWS)
    by_rows = client.predict("iris", ROWS.tolist())
    assert isinstance(by_rows, mg.Prediction)
    assert (by_rows.model, by_rows.version, by_rows.classes) == ("iris", 1, [0, 1, 2])
    assert by_rows.labels == labels and by_rows.runtime == "onnx" and by_rows.request_id
    assert np.allclose(by_rows.probabilities, proba, atol=1e-5, rtol=0)
    records = [dict(zip(FEATURES, row, strict=True)) for row in ROWS.tolist()]
    by_records = client.predict("iris@production", records, version=1)
    assert by_records.labels == labels and by_records.probabilities == by_rows.probabilities
    frame = pd.DataFrame(ROWS, columns=FEATURES, index=[f"i{k}" for k in range(len(ROWS))])
    out = client.predict("iris", frame)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    assert list(out.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
    assert out["prediction"].tolist() == labels
    assert np.allclose(out[["proba_0", "proba_1", "proba_2"]].to_numpy(), by_rows.probabilities)
    pinned = client.predict("iris", ROWS.tolist(), version=2)
    assert pinned.version == 2


def test_models(client: mg.Client, iris: dict[int, LoadedModel]) -> None:
    listed = {m.name: m for m in client.models()}
    iris_model = listed["iris"]
    assert iris_model.ready and iris_model.alias == "production" and iris_model.version == 1
    served = iris_model.served()
    assert served is not None and served.features == FEATURES and served.classes == [0, 1, 2]
    assert served.sha256 and served.runtime == "onnx"
    assert client.model("iris").raw == iris_model.raw
    with pytest.raises(mg.NotFound) as caught:
        client.model("no_such_model")
    assert caught.value.code == "model_not_found"


def test_async_client(gateway: Gateway, iris: dict[int, LoadedModel], worker: Worker) -> None:
    labels, _ = expected(iris, ROWS)
    frame = pd.DataFrame(ROWS, columns=FEATURES)

    async def main() -> None:
        async with mg.AsyncClient(gateway.url, gateway.api_key) as client:
            assert (await client.predict("iris", ROWS.tolist())).labels == labels
            assert (await client.predict("iris", frame))["prediction"].tolist() == labels
            assert "iris" in [m.name for m in await client.models()]
            job = await client.jobs.submit("iris", frame)
            done = await client.jobs.wait(job, poll_interval=0.1, timeout=120)
            assert done.succeeded and done.rows == len(ROWS)
            assert [r["prediction"] async for r in client.jobs.results(job)] == labels
            results = await client.jobs.results_frame(job)
            assert results["prediction"].tolist() == labels
            with pytest.raises(mg.AuthenticationError):
                async with mg.AsyncClient(gateway.url, "wrong-key", retry=0) as stranger:
                    await stranger.models()

    asyncio.run(main())


def test_jobs_from_a_path_a_frame_and_an_iterator(
    client: mg.Client, iris: dict[int, LoadedModel], worker: Worker, tmp_path: Path
) -> None:
    rows = make_rows(30_000, seed=22)
    labels, proba = expected(iris, rows)
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_body(rows))
    job = client.jobs.submit("iris", path, id_columns=["rid"], idempotency_key="client-csv-1")
    assert job.status in ("queued", "running") and job.rows == 30_000 and job.version == 1
    seen: list[int] = []
    done = client.jobs.wait(job, progress=lambda j: seen.append(j.rows_done), poll_interval=0.05)
    assert done.succeeded and done.rows_done == 30_000
    assert seen == sorted(seen) and seen[-1] == 30_000 and len(set(seen)) >= 2, seen

    records = list(client.jobs.results(job))
    assert [r["rid"] for r in records] == [f"r{i}" for i in range(30_000)]
    assert [r["prediction"] for r in records] == labels
    assert np.allclose([r["probabilities"] for r in records], proba, atol=1e-5, rtol=0)
    # The same rows through predict (at most max_sync_rows=1000 at once) answer the same.
    sync = client.predict("iris", rows[:1000].tolist())
    assert sync.labels == labels[:1000]
    assert np.allclose(sync.probabilities, [r["probabilities"] for r in records[:1000]])

    frame = client.jobs.results_frame(job)
    assert list(frame.columns) == ["rid", "prediction", "proba_0", "proba_1", "proba_2"]
    assert frame["prediction"].tolist() == labels
    assert client.jobs.download(job, tmp_path / "out.csv") > 0
    assert pd.read_csv(tmp_path / "out.csv").equals(frame)
    client.jobs.download(job, tmp_path / "out.ndjson")
    assert len((tmp_path / "out.ndjson").read_text().splitlines()) == 30_000
    assert not list(tmp_path.glob("*.part"))
    # Submitted again with the same key and file: the same job.
    again = client.jobs.submit("iris", path, id_columns=["rid"], idempotency_key="client-csv-1")
    assert again.id == job.id and again.existing

    small = make_rows(7_000, seed=23)
    small_labels, _ = expected(iris, small)
    by_frame = pd.DataFrame(small, columns=FEATURES)
    by_frame.insert(0, "rid", [f"f{i}" for i in range(len(small))])
    frame_job = client.jobs.submit("iris", by_frame, id_columns="rid")
    client.jobs.wait(frame_job, poll_interval=0.1)
    frame_out = client.jobs.results_frame(frame_job)
    assert frame_out["rid"].tolist() == by_frame["rid"].tolist()
    assert frame_out["prediction"].tolist() == small_labels

    generated = (
        {"key": f"k{i}", **dict(zip(FEATURES, row, strict=True))}
        for i, row in enumerate(small.tolist())
    )
    iter_job = client.jobs.submit("iris", generated, id_columns=["key"])
    client.jobs.wait(iter_job, poll_interval=0.1)
    out = list(client.jobs.results(iter_job))
    assert [r["key"] for r in out][:3] == ["k0", "k1", "k2"]
    assert [r["prediction"] for r in out] == small_labels

    listed = [j.id for j in client.jobs.list()]
    assert {job.id, frame_job.id, iter_job.id} <= set(listed)
    status = client.jobs.get(job.id)
    assert status.to_dict()["job_id"] == job.id and status.to_dict()["status"] == "succeeded"


class DropFirstAnswer(httpx.BaseTransport):
    """A real connection to the gateway that loses the first POST's answer after the gateway
    acted on it, as a dropped connection would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("idempotency-key"))
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection lost before the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_idle_jobs_conflict_cancel_list_and_one_job_per_key(
    idle: Gateway, redis_durable: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_body(make_rows(50, seed=24)))
    transport = DropFirstAnswer()
    with mg.Client(idle.url, idle.api_key, transport=transport) as client:
        before = {j.id for j in client.jobs.list()}
        job = client.jobs.submit("iris", path, id_columns=["rid"])
        assert job.existing  # the retry found the job the lost answer was about
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        assert transport.keys[0] and len(transport.keys[0]) == 32
        assert {j.id for j in client.jobs.list()} - before == {job.id}

        with pytest.raises(mg.Conflict) as unfinished:
            list(client.jobs.results(job))
        assert unfinished.value.code == "job_not_finished" and unfinished.value.status == 409
        with pytest.raises(mg.WaitTimeout) as late:
            client.jobs.wait(job, timeout=0.3, poll_interval=0.1)
        assert late.value.job.status == "queued"
        cancelled = client.jobs.cancel(job)
        assert cancelled.status == "cancelled"
        with pytest.raises(mg.JobCancelled):
            client.jobs.wait(job)
        with pytest.raises(mg.NotFound) as missing:
            client.jobs.get("0" * 32)
        assert missing.value.code == "job_not_found"


def test_typed_errors_of_real_answers(
    gateway: Gateway, client: mg.Client, redis_durable: RedisServer, tmp_path: Path
) -> None:
    with (
        mg.Client(gateway.url, "not-a-key", retry=0) as stranger,
        pytest.raises(mg.AuthenticationError) as unauthorized,
    ):
        stranger.predict("iris", ROWS.tolist())
    assert unauthorized.value.status == 401 and unauthorized.value.request_id

    jobs_only = make_key(redis_durable.url, scopes=("jobs",))
    predict_only = make_key(redis_durable.url, scopes=("predict",))
    known(gateway, jobs_only)
    known(gateway, predict_only)
    with mg.Client(gateway.url, jobs_only) as limited, pytest.raises(mg.PermissionDenied):
        limited.predict("iris", ROWS.tolist())
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_body(make_rows(5)))
    with mg.Client(gateway.url, predict_only) as limited, pytest.raises(mg.PermissionDenied):
        limited.jobs.submit("iris", path)

    with pytest.raises(mg.NotFound) as unknown:
        client.predict("no_such_model", ROWS.tolist())
    assert unknown.value.code == "model_not_found"
    with pytest.raises(mg.PayloadTooLarge) as too_many:
        client.predict("iris", make_rows(1001).tolist())
    assert too_many.value.code == "too_many_rows" and "jobs.submit" in str(too_many.value)
    with pytest.raises(mg.InvalidInput) as bad_rows:
        client.predict("iris", [[1.0, 2.0]])
    assert bad_rows.value.status == 422
    with pytest.raises(mg.UnsupportedMediaType):
        client.request(
            "POST", "/v1/models/iris/jobs", content=b"x", headers={"Content-Type": "text/plain"}
        )
    with pytest.raises(mg.UnsupportedFormat):
        client.jobs.submit("iris", tmp_path / "rows.txt")

    port = free_port()
    with (
        mg.Client(f"http://127.0.0.1:{port}", retry=0) as nowhere,
        pytest.raises(mg.ConnectionFailed) as unreachable,
    ):
        nowhere.models()
    assert f"cannot reach http://127.0.0.1:{port} (from argument)" in str(unreachable.value)


def test_429_is_retried_after_retry_after(gateway: Gateway, redis_durable: RedisServer) -> None:
    key = make_key(redis_durable.url, predict_limit="1/second")
    known(gateway, key)
    rows = ROWS[:2].tolist()
    with mg.Client(gateway.url, key, retry=mg.Retry(attempts=1)) as once:
        once.predict("iris", rows)
        with pytest.raises(mg.RateLimited) as limited:
            once.predict("iris", rows)
    assert limited.value.retry_after is not None and 1.0 <= limited.value.retry_after <= 2.0
    assert limited.value.code == "rate_limited"
    with mg.Client(gateway.url, key, retry=mg.Retry(attempts=5, max_wait=3.0)) as patient:
        patient.predict("iris", rows)
        started = time.monotonic()
        assert patient.predict("iris", rows).labels  # refused, waited, answered
        assert time.monotonic() - started >= 0.5
