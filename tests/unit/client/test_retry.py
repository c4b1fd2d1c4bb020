"""The retry policy: 429 and 503 after Retry-After (capped) or the backoff, bounded attempts,
connection errors of calls safe to repeat, submissions with one Idempotency-Key and a body
sent again whole, sync and async alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import modelgate_client as mg
from modelgate_client.retry import as_retry
from tests.unit.client.conftest import Fake, envelope, job_body, ok

ANSWER = {"model": "iris", "version": 1, "predictions": [0], "probabilities": None}
ROWS = [[5.1, 3.5, 1.4, 0.2]]


def limited(seconds: str | None = None) -> httpx.Response:
    headers = {"Retry-After": seconds} if seconds is not None else {}
    return envelope(429, "rate_limited", "rate limit of 1 per 60 s exceeded", **headers)


def test_policy_arithmetic() -> None:
    policy = mg.Retry(attempts=5, max_wait=3.0, backoff=0.5)
    assert [policy.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(1, 2.0) == 2.0 and policy.delay(1, 60.0) == 3.0
    assert policy.can_retry(4) and not policy.can_retry(5)
    assert as_retry(0) == mg.Retry(attempts=1) and as_retry(None) == mg.Retry(attempts=1)
    assert as_retry(2) == mg.Retry(attempts=3)
    with pytest.raises(ValueError):
        mg.Retry(attempts=0)
    with pytest.raises(TypeError):
        as_retry(-1)


def test_429_waits_retry_after_then_succeeds(fake: Fake, sleeps: list[float]) -> None:
    fake.script = [limited("2"), limited("90"), ok(ANSWER)]
    with fake.client(retry=mg.Retry(attempts=3, max_wait=30.0)) as client:
        prediction = client.predict("iris", ROWS)
    assert prediction.labels == [0] and len(fake.requests) == 3
    assert sleeps == [2.0, 30.0]  # Retry-After, capped by max_wait


def test_503_without_retry_after_backs_off_and_gives_up(fake: Fake, sleeps: list[float]) -> None:
    fake.script = [httpx.Response(503, text="upstream down")]
    with (
        fake.client(retry=mg.Retry(attempts=4, backoff=0.25)) as client,
        pytest.raises(mg.Unavailable) as caught,
    ):
        client.models()
    assert caught.value.code == "http_503" and len(fake.requests) == 4
    assert sleeps == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("retry", [0, mg.Retry(attempts=1), None])
def test_no_retries(fake: Fake, sleeps: list[float], retry: object) -> None:
    fake.script = [limited("1")]
    with fake.client(retry=retry) as client, pytest.raises(mg.RateLimited) as caught:
        client.predict("iris", ROWS)
    assert caught.value.retry_after == 1.0 and len(fake.requests) == 1 and sleeps == []


def test_a_version_that_cannot_load_is_not_retried(fake: Fake, sleeps: list[float]) -> None:
    reason = "model 'm' version 2: the artifact is a cloudpickle file"
    fake.script = [envelope(503, "model_unavailable", reason)]
    with fake.client() as client, pytest.raises(mg.Unavailable) as caught:
        client.predict("m", ROWS)
    assert caught.value.code == "model_unavailable" and reason in str(caught.value)
    assert len(fake.requests) == 1 and sleeps == []


def test_other_errors_are_not_retried(fake: Fake, sleeps: list[float]) -> None:
    fake.script = [envelope(422, "invalid_input", "row 0 is bad")]
    with fake.client() as client, pytest.raises(mg.InvalidInput):
        client.predict("iris", ROWS)
    assert len(fake.requests) == 1 and sleeps == []


def test_connection_errors_retried_only_when_safe(fake: Fake, sleeps: list[float]) -> None:
    def drop(request: httpx.Request) -> Exception:
        return httpx.ReadError("connection reset", request=request)

    fake.script = [drop, ok({"jobs": []})]
    with fake.client() as client:
        assert client.jobs.list() == []
    assert len(fake.requests) == 2 and sleeps == [0.5]
    # A POST the client cannot tell is safe (the low-level path) is sent once.
    fake.requests.clear()
    fake.script = [drop]
    with fake.client() as client, pytest.raises(mg.ConnectionFailed):
        client.request("POST", "/v1/admin/keys", json={"name": "x"})
    assert len(fake.requests) == 1


def test_submission_retries_send_one_key_and_the_whole_body(
    fake: Fake, sleeps: list[float], tmp_path: Path
) -> None:
    upload = tmp_path / "rows.csv"
    upload.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)  # several blocks
    fake.script = [
        limited("1"),
        envelope(409, "idempotency_in_progress", "still being stored"),
        lambda request: httpx.ReadError("reset", request=request),
        ok(job_body(), status=202),
    ]
    with fake.client(retry=mg.Retry(attempts=4)) as client:
        job = client.jobs.submit("iris@production", upload)
    assert job.id and len(fake.requests) == 4
    keys = {r.headers["idempotency-key"] for r in fake.requests}
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert all(body == upload.read_bytes() for body in fake.bodies)
    assert fake.requests[0].headers["content-length"] == str(upload.stat().st_size)
    assert fake.requests[0].headers["content-type"] == "text/csv"
    assert fake.requests[0].headers["user-agent"] == f"modelgate-client/{mg.__version__}"
    assert fake.requests[0].headers["x-api-key"] == "k-1"
    assert fake.requests[0].url.path == "/v1/models/iris@production/jobs"
    assert sleeps == [1.0, 1.0, 2.0]  # Retry-After, then the backoff


def test_a_one_shot_iterator_is_spooled_and_sent_again(fake: Fake, sleeps: list[float]) -> None:
    records = ({"a": i, "b": i * 2} for i in range(50_000))
    fake.script = [limited("1"), ok(job_body(), status=202)]
    with fake.client() as client:
        client.jobs.submit("iris", records, idempotency_key="mine", id_columns=["a"])
    assert len(fake.bodies) == 2 and fake.bodies[0] == fake.bodies[1]
    lines = fake.bodies[0].splitlines()
    assert len(lines) == 50_000 and lines[1] == b'{"a":1,"b":2}'
    assert {r.headers["idempotency-key"] for r in fake.requests} == {"mine"}
    assert fake.requests[0].url.params["id_columns"] == "a"
    assert fake.requests[0].headers["content-type"] == "application/x-ndjson"


def test_async_client_retries_alike(fake: Fake, sleeps: list[float], tmp_path: Path) -> None:
    upload = tmp_path / "rows.ndjson"
    upload.write_bytes(b'{"a": 1}\n' * 1000)
    fake.script = [limited("3"), ok(ANSWER)]

    async def main() -> None:
        async with fake.async_client() as client:
            assert (await client.predict("iris", ROWS)).labels == [0]
            fake.script = [limited(None), ok(job_body(), status=202)]
            fake.requests.clear()
            fake.bodies.clear()
            job = await client.jobs.submit("iris", upload)
            assert job.status == "queued"

    asyncio.run(main())
    assert sleeps == [3.0, 0.5]
    assert fake.bodies == [upload.read_bytes()] * 2
    assert len({r.headers["idempotency-key"] for r in fake.requests}) == 1
