"""Job helpers on a scripted gateway: wait with progress and its outcomes, results streamed
line by line, downloads through a .part file, upload bodies, the predict body and frames."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

import modelgate_client as mg
from modelgate_client.predict import predict_body
from modelgate_client.uploads import make_upload
from tests.unit.client.conftest import JOB_ID, Fake, envelope, job_body, ok

NDJSON = b'{"id":"a","prediction":0,"probabilities":[0.9,0.1]}\n\n{"id":"b","prediction":1}\n'
CSV = b"id,prediction,proba_0,proba_1\na,0,0.9,0.1\nb,1,0.2,0.8\n"


def test_wait_calls_progress_after_each_poll(fake: Fake, sleeps: list[float]) -> None:
    fake.script = [
        ok(job_body("queued", 0, rows=10)),
        ok(job_body("running", 4, rows=10)),
        ok(job_body("succeeded", 10, rows=10)),
    ]
    seen: list[tuple[str, int]] = []
    with fake.client() as client:
        job = client.jobs.wait(JOB_ID, progress=lambda j: seen.append((j.status, j.rows_done)))
    assert seen == [("queued", 0), ("running", 4), ("succeeded", 10)]
    assert job.succeeded and job.done and job.to_dict()["rows_done"] == 10
    assert sleeps == [1.0, 1.0]
    assert all(r.url.path == f"/v1/jobs/{JOB_ID}" for r in fake.requests)


def test_wait_raises_for_failed_cancelled_and_timeout(fake: Fake, sleeps: list[float]) -> None:
    failed = job_body("failed", 1, error={"code": "chunk_failed", "message": "boom"})
    fake.script = [ok(failed)]
    with fake.client() as client, pytest.raises(mg.JobFailed) as caught:
        client.jobs.wait(JOB_ID)
    assert caught.value.code == "chunk_failed" and "boom" in str(caught.value)
    assert caught.value.job.error_code == "chunk_failed" and caught.value.status is None
    fake.script = [ok(job_body("cancelled"))]
    with fake.client() as client, pytest.raises(mg.JobCancelled) as cancelled:
        client.jobs.wait(JOB_ID)
    assert cancelled.value.job.status == "cancelled"
    fake.script = [ok(job_body("running"))]
    with fake.client() as client, pytest.raises(mg.WaitTimeout) as late:
        client.jobs.wait(JOB_ID, timeout=0, poll_interval=0.1)
    assert late.value.job.status == "running"


def test_results_are_parsed_line_by_line(fake: Fake) -> None:
    fake.script = [httpx.Response(200, content=NDJSON)]
    with fake.client() as client:
        records = list(client.jobs.results(JOB_ID))
    assert records == [
        {"id": "a", "prediction": 0, "probabilities": [0.9, 0.1]},
        {"id": "b", "prediction": 1},
    ]
    assert fake.requests[0].headers["accept"] == "application/x-ndjson"
    fake.script = [envelope(409, "job_not_finished", "the job is running")]
    with fake.client() as client, pytest.raises(mg.Conflict):
        list(client.jobs.results(JOB_ID))


def test_download_goes_through_a_part_file(fake: Fake, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    fake.script = [httpx.Response(200, content=CSV)]
    with fake.client() as client:
        assert client.jobs.download(JOB_ID, target) == len(CSV)
        assert target.read_bytes() == CSV and not (tmp_path / "out.csv.part").exists()
        assert fake.requests[0].headers["accept"] == "text/csv"
        frame = client.jobs.results_frame(JOB_ID)
        assert list(frame.columns) == ["id", "prediction", "proba_0", "proba_1"]
        assert frame["prediction"].tolist() == [0, 1]
        fake.script = [envelope(410, "job_results_deleted", "gone")]
        with pytest.raises(mg.Gone):
            client.jobs.download(JOB_ID, tmp_path / "gone.ndjson")
        assert not (tmp_path / "gone.ndjson").exists()
        assert not (tmp_path / "gone.ndjson.part").exists()
        with pytest.raises(mg.UnsupportedFormat):
            client.jobs.download(JOB_ID, tmp_path / "out.txt")


def test_async_jobs(fake: Fake, sleeps: list[float], tmp_path: Path) -> None:
    async def main() -> None:
        async with fake.async_client() as client:
            fake.script = [ok(job_body("running", 1)), ok(job_body("succeeded", 2))]
            seen: list[int] = []
            job = await client.jobs.wait(JOB_ID, progress=lambda j: seen.append(j.rows_done))
            assert job.succeeded and seen == [1, 2]
            fake.script = [httpx.Response(200, content=NDJSON)]
            assert [r["id"] async for r in client.jobs.results(job)] == ["a", "b"]
            fake.script = [httpx.Response(200, content=CSV)]
            assert await client.jobs.download(job, tmp_path / "r.csv") == len(CSV)
            assert (await client.jobs.results_frame(job)).shape == (2, 4)
            fake.script = [ok({"jobs": [job_body("queued")]})]
            assert [j.id for j in await client.jobs.list(all=True)] == [JOB_ID]
            assert fake.requests[-1].url.params["all"] == "true"
            fake.script = [ok(job_body("cancelled"))]
            assert (await client.jobs.cancel(JOB_ID)).status == "cancelled"
            assert fake.requests[-1].method == "DELETE"

    asyncio.run(main())


def test_predict_body_shapes() -> None:
    assert predict_body([[1, 2]]) == {"instances": [[1, 2]]}
    assert predict_body(([1, 2],), version=3) == {"instances": [[1, 2]], "version": 3}
    assert predict_body([{"a": 1}]) == {"records": [{"a": 1}]}
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}, index=[10, 20])
    assert predict_body(frame) == {"records": [{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}]}
    for bad in ({"a": 1}, "rows", 3):
        with pytest.raises(TypeError):
            predict_body(bad)


def test_predict_a_frame_gives_a_frame_with_its_index(fake: Fake) -> None:
    fake.script = [
        ok(
            {
                "model": "iris",
                "version": 2,
                "predictions": [0, 2],
                "probabilities": [[0.9, 0.05, 0.05], [0.0, 0.1, 0.9]],
                "classes": [0, 1, 2],
            },
            **{"X-Model-Runtime": "onnx", "X-Cache-Hits": "1", "X-Cache-Misses": "1"},
        )
    ]
    frame = pd.DataFrame({"a": [1.0, float("inf")]}, index=["x", "y"])
    with fake.client() as client:
        with pytest.raises(ValueError, match="NaN and infinite"):
            client.predict("iris", frame)
        out = client.predict("iris", frame.clip(upper=5.0), version=2)
        assert list(out.index) == ["x", "y"]
        assert list(out.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
        assert out["proba_2"].tolist() == [0.05, 0.9]
        sent = json.loads(fake.bodies[-1])
        assert sent == {"records": [{"a": 1.0}, {"a": 5.0}], "version": 2}
        prediction = client.predict("iris@production", [[1.0]])
    assert prediction.runtime == "onnx" and prediction.cache_hits == 1
    assert prediction.classes == [0, 1, 2] and len(prediction) == 2
    assert fake.requests[-1].url.path == "/v1/models/iris@production/predict"


def test_upload_bodies(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(25_000), "b": [0.5] * 25_000})
    body = make_upload(frame)
    text = b"".join(body.blocks())
    assert body.content_type == "text/csv" and text == b"".join(body.blocks())
    assert text.startswith(b"a,b\n0,0.5\n") and text.count(b"\n") == 25_001
    assert b"".join(make_upload(frame.head(2), "ndjson").blocks()) == (
        b'{"a":0,"b":0.5}\n{"a":1,"b":0.5}\n'
    )
    listed = make_upload([{"a": 1}, {"a": 2}])
    assert b"".join(listed.blocks()) == b'{"a":1}\n{"a":2}\n'
    rows = make_upload([[1, 2], [3, 4]])
    assert rows.content_type == "application/json"
    assert b"".join(rows.blocks()) == b'{"instances":[[1,2],[3,4]]}'
    with pytest.raises(mg.UnsupportedFormat):
        make_upload(tmp_path / "rows.txt")
    with pytest.raises(TypeError):
        make_upload(iter([[1, 2]]))
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a":1}\n')
    with open(path, "rb") as handle:
        opened = make_upload(handle)
        assert opened.content_type == "application/x-ndjson" and opened.size == 8
        assert b"".join(opened.blocks()) * 2 == b"".join([*opened.blocks(), *opened.blocks()])
        opened.close()
        assert not handle.closed  # the caller's file stays the caller's
    assert mg.format_for_path("x.JSONL") == "ndjson"
    assert mg.format_for_path("x.bin", "CSV") == "csv"
