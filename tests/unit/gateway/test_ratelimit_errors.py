"""Which failures of a rate-limit check count as "storage down" (gateway/guard/ratelimit.py).

Only what the Redis calls can raise (redis-py's errors, OSError, timeouts) is a storage failure,
answered by `fail_open` and counted. Anything else is a bug: it must reach the request
middleware, which logs its traceback once and answers 500, rather than be taken for an outage
and admit (or refuse) every request silently while the breaker is open.

The real SlidingWindow runs on a fake Redis client, in a tiny app with the gateway's error
handlers and request middleware, so the whole path from the script's reply to the answer runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

with warnings.catch_warnings():
    # Starlette prefers `httpx2` now; the pinned `httpx` still drives TestClient the same way.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gateway.guard import ratelimit
from gateway.guard.keys import ApiKey
from gateway.guard.ratelimit import RateLimiter
from gateway.http.errors import install_error_handlers
from gateway.http.middleware import RequestContextMiddleware
from tests.unit.gateway.redis_pipelines import FakeRedis

KEY = ApiKey(id="k1", name="k1", owner="acme", scopes=("predict",), sha256="0" * 64)


def build(redis: FakeRedis, *, fail_open: bool) -> tuple[RateLimiter, TestClient]:
    # A long breaker: were a failure taken for an outage, the next check would skip Redis.
    limiter = RateLimiter(
        redis,  # type: ignore[arg-type]
        "mg:",
        {"predict": "10/minute", "jobs": "10/minute", "reads": "10/minute"},
        fail_open=fail_open,
        breaker_seconds=60.0,
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        return (await limiter.check("predict", KEY)).headers

    app.add_middleware(RequestContextMiddleware)
    return limiter, TestClient(app, raise_server_exceptions=False)


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO):
        yield caplog


def storage_errors() -> float:
    """Checks counted as storage failures so far (both outcomes)."""
    return sum(
        REGISTRY.get_sample_value(
            "modelgate_rate_limit_storage_errors_total", {"kind": "predict", "outcome": outcome}
        )
        or 0.0
        for outcome in ("open", "closed")
    )


def tracebacks(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> list[Any]:
    return [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], kind)]


def interpret_with_a_bug(reply: Any) -> tuple[bool, int, float]:
    raise TypeError("a bug in reading the script's reply")


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_a_bug_in_reading_the_reply_is_a_logged_500_not_an_outage(
    monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture, fail_open: bool
) -> None:
    redis = FakeRedis()
    _, client = build(redis, fail_open=fail_open)
    before = storage_errors()
    monkeypatch.setattr(ratelimit, "_interpret", interpret_with_a_bug)
    with client:
        response = client.get("/limited")
        # Neither admitted as if Redis were down (200) nor refused as if it were (503).
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal"
        assert "a bug" not in response.text
        # The traceback is logged once, by the request middleware.
        logged = tracebacks(logs, TypeError)
        assert len(logged) == 1 and logged[0].name == "gateway.access"
        assert not [r for r in logs.records if "storage failed" in r.getMessage()]
        assert storage_errors() == before
        # The breaker stayed closed: once the bug is gone, the next check asks Redis again.
        monkeypatch.undo()
        after = client.get("/limited")
    assert after.status_code == 200
    assert after.json()["RateLimit"] == '"predict";r=9;t=30'
    assert redis.round_trips == 2
    assert storage_errors() == before


def test_a_bug_raised_below_the_pipeline_is_not_an_outage_either(
    logs: pytest.LogCaptureFixture,
) -> None:
    """What the pipeline raises reaches the check unchanged: a TypeError there (say, an argument
    of the wrong type) is a bug too, whichever layer raised it."""
    _, client = build(FakeRedis(failure=TypeError("bad argument")), fail_open=True)
    before = storage_errors()
    with client:
        assert client.get("/limited").status_code == 500
    assert len(tracebacks(logs, TypeError)) == 1
    assert storage_errors() == before


@pytest.mark.parametrize(
    "failure",
    [
        RedisConnectionError("refused"),
        RedisTimeoutError("slow"),
        ConnectionResetError(),
        TimeoutError(),  # asyncio.TimeoutError too: the same class since Python 3.11
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_storage_failures_are_still_an_outage(
    logs: pytest.LogCaptureFixture, failure: BaseException, fail_open: bool
) -> None:
    """The other side of the line, on the same path: a real storage failure is answered by
    `fail_open`, counted, logged without a traceback, and opens the breaker."""
    redis = FakeRedis(failure=failure)
    _, client = build(redis, fail_open=fail_open)
    before = storage_errors()
    with client:
        statuses = [client.get("/limited").status_code for _ in range(2)]
    assert statuses == ([200, 200] if fail_open else [503, 503])
    assert storage_errors() == before + 2
    assert redis.round_trips == 1  # the second check was answered by the open breaker
    assert [r for r in logs.records if "storage failed" in r.getMessage()]
    assert not [r for r in logs.records if r.exc_info]


def test_an_error_reply_from_redis_is_an_outage() -> None:
    """An EVALSHA that Redis answers with an error (out of memory, a read-only replica) is
    returned in the pipeline's results, not raised; it still counts as storage down."""
    _, client = build(FakeRedis(reply=ResponseError("OOM command not allowed")), fail_open=True)
    before = storage_errors()
    with client:
        assert client.get("/limited").status_code == 200
    assert storage_errors() == before + 1
