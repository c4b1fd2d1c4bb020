"""Authentication from the key snapshot, per-key rate limits, and their settings.

gateway/guard/auth.py, gateway/guard/ratelimit.py and the key and limit fields of
gateway/settings.py, with
in-memory stand-ins for Redis and for the `limits` strategy: no network, no real service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers

from gateway.guard.auth import (
    AmbiguousCredentials,
    Forbidden,
    KeyRing,
    KeySnapshot,
    Unauthorized,
    bootstrap_key,
    presented_key,
)
from gateway.guard.keys import SCOPES, ApiKey, key_digest, new_key_value
from gateway.guard.ratelimit import Decision, RateLimited, RateLimiter, RateLimitUnavailable
from gateway.settings import GatewaySettings

PREFIX = "test:"
HASH_KEY = f"{PREFIX}apikeys"
UNREACHABLE = "redis://127.0.0.1:1/0"
DEFAULTS = {"predict": "1200/minute", "jobs": "120/hour", "reads": "6000/minute"}


def new_key(key_id: str, *, scopes: tuple[str, ...] = ("predict",), **extra: Any):
    """A stored record for a fresh `mg_` key, and the key's value."""
    value = new_key_value(key_id)
    record = ApiKey(
        id=key_id, name=key_id, owner="acme", scopes=scopes, sha256=key_digest(value), **extra
    )
    return record, value


def imported_key(key_id: str, value: str, *, scopes: tuple[str, ...] = ("predict",)) -> ApiKey:
    return ApiKey(
        id=key_id,
        name="legacy",
        owner="initech",
        scopes=scopes,
        sha256=key_digest(value),
        imported=True,
    )


def headers(**values: str) -> Headers:
    return Headers(headers={k.replace("_", "-"): v for k, v in values.items()})


class AsyncMemoryRedis:
    """The one call KeyRing makes, `hgetall`, over a dict of bytes; or a failure to raise."""

    def __init__(self, records: list[ApiKey] | None = None) -> None:
        self.fields: dict[bytes, bytes] = {}
        self.failure: BaseException | None = None
        self.calls = 0
        for record in records or []:
            self.put(record)

    def put(self, record: ApiKey) -> None:
        self.fields[record.id.encode()] = record.to_json()

    async def hgetall(self, name: str) -> dict[bytes, bytes]:
        self.calls += 1
        assert name == HASH_KEY
        if self.failure is not None:
            raise self.failure
        return dict(self.fields)


def ring(redis: AsyncMemoryRedis, bootstrap: ApiKey | None = None) -> KeyRing:
    return KeyRing(redis, PREFIX, refresh_seconds=2.0, bootstrap=bootstrap)  # type: ignore[arg-type]


# -- KeySnapshot -----------------------------------------------------------------------------


def test_snapshot_skips_revoked_keys() -> None:
    active, active_value = new_key("a1")
    revoked, revoked_value = new_key("b2", revoked_at=time.time())
    snapshot = KeySnapshot.of([active, revoked])
    assert set(snapshot.by_id) == {"a1"}
    assert set(snapshot.by_digest) == {active.sha256}
    assert snapshot.authenticate(active_value) == active
    assert snapshot.authenticate(revoked_value) is None


def test_snapshot_finds_a_new_key_by_its_id() -> None:
    record, value = new_key("a1")
    assert KeySnapshot.of([record]).authenticate(value) == record


def test_snapshot_finds_an_imported_key_by_its_digest() -> None:
    legacy = "legacy-client-key-0123456789"
    record = imported_key("c3", legacy)
    assert KeySnapshot.of([record]).authenticate(legacy) == record


def test_snapshot_finds_an_imported_key_shaped_like_a_new_one() -> None:
    # An old client's value may happen to look like mg_<id>_<secret> with an id nobody has.
    legacy = "mg_oldapp_0123456789abcdef"
    record = imported_key("c3", legacy)
    assert KeySnapshot.of([record]).authenticate(legacy) == record


def test_snapshot_refuses_a_known_id_with_a_wrong_secret() -> None:
    record, value = new_key("a1")
    snapshot = KeySnapshot.of([record])
    assert snapshot.authenticate("mg_a1_" + "A" * 43) is None
    assert snapshot.authenticate(value + "x") is None
    assert snapshot.authenticate(value[:-1]) is None


@pytest.mark.parametrize("value", ["nobody-has-this-key-0123", "mg_zz9_secret", "x", ""])
def test_snapshot_refuses_unknown_values(value: str) -> None:
    record, _ = new_key("a1")
    legacy = imported_key("c3", "legacy-client-key-0123456789")
    assert KeySnapshot.of([record, legacy]).authenticate(value) is None


def test_snapshot_refuses_the_digest_itself_as_a_key() -> None:
    record, _ = new_key("a1")
    assert KeySnapshot.of([record]).authenticate(record.sha256) is None


def test_empty_snapshot_refuses_everything() -> None:
    assert KeySnapshot().authenticate("anything-at-all-0123") is None


# -- presented_key ---------------------------------------------------------------------------


def test_presented_key_from_x_api_key() -> None:
    assert presented_key(headers(x_api_key="k-123")) == "k-123"


def test_presented_key_from_x_api_key_is_stripped() -> None:
    assert presented_key(headers(x_api_key=" k-123 ")) == "k-123"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_presented_key_from_authorization_bearer(scheme: str) -> None:
    assert presented_key(headers(authorization=f"{scheme} k-456")) == "k-456"


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token k-456", "k-456", "Bearer", "Bearer ", "Bearer   ", ""],
)
def test_presented_key_ignores_other_authorization(authorization: str) -> None:
    assert presented_key(headers(authorization=authorization)) is None


def test_presented_key_of_an_empty_x_api_key_is_none() -> None:
    assert presented_key(headers(x_api_key="")) is None


def test_presented_key_without_headers_is_none() -> None:
    assert presented_key(Headers()) is None


def test_presented_key_refuses_a_key_and_a_different_bearer_token() -> None:
    both = headers(x_api_key="from-x-api-key", authorization="Bearer from-authorization")
    with pytest.raises(AmbiguousCredentials):
        presented_key(both)
    same = headers(x_api_key="k-1", authorization="Bearer k-1")
    assert presented_key(same) == "k-1"


def test_presented_key_refuses_a_repeated_header() -> None:
    for name in (b"x-api-key", b"authorization"):
        value = b"Bearer k-1" if name == b"authorization" else b"k-1"
        with pytest.raises(AmbiguousCredentials):
            presented_key(Headers(raw=[(name, value), (name, value)]))


def test_presented_key_falls_back_to_bearer_when_x_api_key_is_empty() -> None:
    both = headers(x_api_key="", authorization="Bearer from-authorization")
    assert presented_key(both) == "from-authorization"


def test_presented_key_header_names_are_case_insensitive() -> None:
    assert presented_key(Headers(headers={"X-Api-KEY": "k-789"})) == "k-789"
    assert presented_key(Headers(headers={"AUTHORIZATION": "Bearer k-0"})) == "k-0"


# -- bootstrap_key ---------------------------------------------------------------------------


@pytest.mark.parametrize("sha256", [None, ""])
def test_no_bootstrap_key_without_a_hash(sha256: str | None) -> None:
    assert bootstrap_key(sha256, "admin") is None


def test_bootstrap_key_has_every_scope_and_a_lower_case_hash() -> None:
    value = "bootstrap-admin-key-0123456789"
    key = bootstrap_key(key_digest(value).upper(), "ops")
    assert key is not None
    assert set(key.scopes) == set(SCOPES)
    assert key.sha256 == key_digest(value)
    assert key.owner == "ops"
    assert not key.revoked
    assert KeySnapshot.of([key]).authenticate(value) == key


# -- KeyRing.authenticate --------------------------------------------------------------------


def test_keyring_authenticates_a_key_with_the_scope() -> None:
    record, value = new_key("a1", scopes=("predict", "jobs"))
    keys = ring(AsyncMemoryRedis())
    keys.snapshot = KeySnapshot.of([record])
    assert keys.authenticate(headers(x_api_key=value), "jobs") == record
    assert keys.authenticate(headers(authorization=f"Bearer {value}"), "predict") == record


def test_keyring_refuses_missing_and_unknown_keys_alike() -> None:
    record, value = new_key("a1")
    keys = ring(AsyncMemoryRedis())
    keys.snapshot = KeySnapshot.of([record])
    messages = set()
    for presented in (
        Headers(),
        headers(x_api_key=""),
        headers(authorization="Basic dXNlcjpwYXNz"),
        headers(x_api_key="nobody-has-this-key-0123"),
        headers(x_api_key="mg_a1_" + "A" * 43),  # known id, wrong secret
        headers(x_api_key=value + "x"),
    ):
        with pytest.raises(Unauthorized) as excinfo:
            keys.authenticate(presented, "predict")
        assert excinfo.value.code == "unauthorized"
        messages.add(excinfo.value.message)
    assert len(messages) == 1
    (message,) = messages
    assert "a1" not in message
    assert "secret" not in message.lower()


def test_keyring_refuses_a_revoked_key_as_unknown() -> None:
    record, value = new_key("a1", revoked_at=time.time())
    keys = ring(AsyncMemoryRedis())
    keys.snapshot = KeySnapshot.of([record])
    with pytest.raises(Unauthorized):
        keys.authenticate(headers(x_api_key=value), "predict")


def test_keyring_forbids_a_key_without_the_scope() -> None:
    record, value = new_key("a1", scopes=("predict",))
    keys = ring(AsyncMemoryRedis())
    keys.snapshot = KeySnapshot.of([record])
    with pytest.raises(Forbidden) as excinfo:
        keys.authenticate(headers(x_api_key=value), "admin")
    assert excinfo.value.code == "forbidden"
    # The key is genuine, so its holder is told what is missing and what it has.
    assert "'admin' scope" in excinfo.value.message and "has: predict" in excinfo.value.message


def test_keyring_starts_with_the_bootstrap_key_only() -> None:
    value = "bootstrap-admin-key-0123456789"
    keys = ring(AsyncMemoryRedis(), bootstrap_key(key_digest(value), "admin"))
    assert keys.loaded_at is None
    assert keys.authenticate(headers(x_api_key=value), "admin").id == "bootstrap"


# -- KeyRing.refresh -------------------------------------------------------------------------


def test_refresh_swaps_the_snapshot_and_sets_loaded_at() -> None:
    first, first_value = new_key("a1")
    second, second_value = new_key("b2")
    redis = AsyncMemoryRedis([first])
    keys = ring(redis)
    before = time.time()
    assert asyncio.run(keys.refresh()) is True
    assert keys.loaded_at is not None and keys.loaded_at >= before
    assert keys.snapshot.authenticate(first_value) == first
    assert keys.snapshot.authenticate(second_value) is None

    redis.put(second)
    redis.put(ApiKey(**{**first.__dict__, "revoked_at": time.time()}))
    old_snapshot = keys.snapshot
    assert asyncio.run(keys.refresh()) is True
    assert keys.snapshot is not old_snapshot
    assert keys.snapshot.authenticate(second_value) == second
    assert keys.snapshot.authenticate(first_value) is None


@pytest.mark.parametrize(
    "failure",
    [RedisConnectionError("refused"), RedisTimeoutError("slow"), ConnectionRefusedError()],
)
def test_refresh_failure_keeps_the_previous_snapshot(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    record, value = new_key("a1")
    redis = AsyncMemoryRedis([record])
    keys = ring(redis)
    assert asyncio.run(keys.refresh()) is True
    snapshot, loaded_at = keys.snapshot, keys.loaded_at

    redis.failure = failure
    with caplog.at_level(logging.WARNING, logger="gateway.guard.auth"):
        assert asyncio.run(keys.refresh()) is False
        assert asyncio.run(keys.refresh()) is False
    assert keys.snapshot is snapshot
    assert keys.loaded_at == loaded_at
    assert keys.authenticate(headers(x_api_key=value), "predict") == record
    # Logged once per outage, not on every refresh.
    assert len([r for r in caplog.records if "refresh failed" in r.getMessage()]) == 1


def test_refresh_works_again_after_an_outage() -> None:
    record, value = new_key("a1")
    redis = AsyncMemoryRedis()
    redis.failure = RedisConnectionError("refused")
    keys = ring(redis)
    assert asyncio.run(keys.refresh()) is False
    redis.failure = None
    redis.put(record)
    assert asyncio.run(keys.refresh()) is True
    assert keys.snapshot.authenticate(value) == record


def test_bootstrap_key_survives_refreshes() -> None:
    value = "bootstrap-admin-key-0123456789"
    record, record_value = new_key("a1")
    redis = AsyncMemoryRedis([record])
    keys = ring(redis, bootstrap_key(key_digest(value), "admin"))
    assert asyncio.run(keys.refresh()) is True
    assert keys.authenticate(headers(x_api_key=value), "admin").id == "bootstrap"
    assert keys.authenticate(headers(x_api_key=record_value), "predict") == record
    redis.failure = RedisConnectionError("refused")
    assert asyncio.run(keys.refresh()) is False
    assert keys.authenticate(headers(x_api_key=value), "admin").id == "bootstrap"


def test_refresh_survives_a_malformed_record() -> None:
    # One record that is not JSON (or lacks a field) must not raise out of refresh(): in the
    # background task `_follow` that exception ends the loop for good, so every later key and
    # every revocation would be ignored until the gateway restarts.
    record, value = new_key("a1")
    redis = AsyncMemoryRedis([record])
    keys = ring(redis)
    assert asyncio.run(keys.refresh()) is True
    redis.fields[b"broken"] = b"{not json"
    redis.fields[b"partial"] = orjson.dumps({"id": "partial"})
    asyncio.run(keys.refresh())
    assert keys.authenticate(headers(x_api_key=value), "predict") == record


def test_follow_outlives_a_malformed_record() -> None:
    redis = AsyncMemoryRedis()
    redis.fields[b"broken"] = b"{not json"
    keys = KeyRing(redis, PREFIX, refresh_seconds=0.01, bootstrap=None)  # type: ignore[arg-type]

    async def scenario() -> bool:
        keys.start()
        await asyncio.sleep(0.05)
        assert keys._task is not None
        alive = not keys._task.done()
        await keys.stop()
        return alive

    assert asyncio.run(scenario()), "the key refresh task ended"
    assert redis.calls >= 2


def test_follow_keeps_refreshing() -> None:
    record, value = new_key("a1")
    redis = AsyncMemoryRedis()
    keys = KeyRing(redis, PREFIX, refresh_seconds=0.01, bootstrap=None)  # type: ignore[arg-type]

    async def scenario() -> None:
        keys.start()
        await asyncio.sleep(0.05)
        redis.put(record)
        for _ in range(100):
            if keys.snapshot.authenticate(value) is not None:
                break
            await asyncio.sleep(0.01)
        await keys.stop()

    asyncio.run(scenario())
    assert keys.snapshot.authenticate(value) == record
    assert redis.calls >= 2


# -- RateLimiter -----------------------------------------------------------------------------


class StubLimiter:
    """Stands in for the Redis sliding window: fixed answers, or a failure."""

    def __init__(
        self,
        *,
        allowed: bool = True,
        remaining: int = 0,
        reset_in: float = 30.0,
        failure: BaseException | None = None,
    ) -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.reset_in = reset_in
        self.failure = failure
        self.hits: list[tuple[Any, ...]] = []

    async def acquire(self, item: Any, kind: str, key_id: str) -> tuple[bool, int, float]:
        self.hits.append((item, kind, key_id))
        if self.failure is not None:
            raise self.failure
        return self.allowed, self.remaining, self.reset_in


def limiter(*, fail_open: bool = True, stub: StubLimiter | None = None) -> RateLimiter:
    built = RateLimiter(AsyncRedis.from_url(UNREACHABLE), PREFIX, DEFAULTS, fail_open=fail_open)
    if stub is not None:
        built.window = stub  # type: ignore[assignment]
    return built


def test_constructor_does_not_connect() -> None:
    built = limiter()
    assert built.fail_open is True


def test_item_for_uses_the_defaults() -> None:
    record, _ = new_key("a1")
    built = limiter()
    for kind, text in DEFAULTS.items():
        item = built.item_for(kind, record)
        amount, _, period = text.partition("/")
        assert item.amount == int(amount)
        assert item.get_expiry() == {"minute": 60, "hour": 3600}[period]


def test_item_for_uses_the_keys_own_limit_per_kind() -> None:
    record, _ = new_key("a1", predict_limit="100/minute", reads_limit="5 per second")
    built = limiter()
    predict = built.item_for("predict", record)
    assert (predict.amount, predict.get_expiry()) == (100, 60)
    reads = built.item_for("reads", record)
    assert (reads.amount, reads.get_expiry()) == (5, 1)
    jobs = built.item_for("jobs", record)  # not set on the key: the default
    assert (jobs.amount, jobs.get_expiry()) == (120, 3600)


def test_check_under_the_limit_returns_the_headers() -> None:
    record, _ = new_key("a1", predict_limit="600/minute")
    stub = StubLimiter(allowed=True, remaining=599, reset_in=59.2)
    decision = asyncio.run(limiter(stub=stub).check("predict", record))
    assert isinstance(decision, Decision)
    assert decision.headers["RateLimit-Policy"] == '"predict";q=600;w=60'
    assert decision.headers["RateLimit"] == '"predict";r=599;t=60'
    assert "Retry-After" not in decision.headers
    # Counted per key and per kind.
    assert stub.hits[0][1:] == ("predict", "a1")


def test_check_over_the_limit_raises_rate_limited_with_headers() -> None:
    record, _ = new_key("a1", predict_limit="100/minute")
    stub = StubLimiter(allowed=False, remaining=0, reset_in=42.3)
    with pytest.raises(RateLimited) as excinfo:
        asyncio.run(limiter(stub=stub).check("predict", record))
    error = excinfo.value
    assert error.code == "rate_limited"
    assert error.headers["RateLimit-Policy"] == '"predict";q=100;w=60'
    assert error.headers["RateLimit"] == '"predict";r=0;t=43'
    assert int(error.headers["Retry-After"]) >= 1
    assert error.headers["Retry-After"] == "43"


def test_retry_after_is_at_least_one_second_when_the_window_is_resetting() -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(allowed=False, remaining=0, reset_in=-0.5)
    with pytest.raises(RateLimited) as excinfo:
        asyncio.run(limiter(stub=stub).check("predict", record))
    assert excinfo.value.headers["RateLimit"].startswith('"predict";r=0;t=')
    assert int(excinfo.value.headers["RateLimit"].rsplit("=", 1)[1]) >= 0
    assert excinfo.value.headers["Retry-After"] == "1"


def test_negative_remaining_is_shown_as_zero() -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(allowed=False, remaining=-3)
    with pytest.raises(RateLimited) as excinfo:
        asyncio.run(limiter(stub=stub).check("jobs", record))
    assert ";r=0;" in excinfo.value.headers["RateLimit"]
    assert excinfo.value.headers["RateLimit-Policy"] == '"jobs";q=120;w=3600'


FAILURES = [
    RedisConnectionError("refused"),
    RedisTimeoutError("slow"),
    ConnectionRefusedError(),
    TimeoutError(),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_storage_failure_fails_open(failure: Exception) -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(failure=failure)
    decision = asyncio.run(limiter(fail_open=True, stub=stub).check("predict", record))
    assert decision == Decision({})


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_storage_failure_fails_closed(failure: Exception) -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(failure=failure)
    with pytest.raises(RateLimitUnavailable) as excinfo:
        asyncio.run(limiter(fail_open=False, stub=stub).check("predict", record))
    assert excinfo.value.code == "rate_limit_unavailable"


def test_storage_failure_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    record, value = new_key("a1")
    stub = StubLimiter(failure=RedisConnectionError(f"refused {value}"))
    with caplog.at_level(logging.WARNING, logger="gateway.guard.ratelimit"):
        asyncio.run(limiter(stub=stub).check("predict", record))
    assert caplog.records
    assert all(value not in r.getMessage() for r in caplog.records)


def test_breaker_skips_the_storage_after_a_failure() -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(failure=RedisConnectionError("refused"))
    built = limiter(fail_open=False, stub=stub)
    built.breaker_seconds = 60.0
    for _ in range(3):
        with pytest.raises(RateLimitUnavailable):
            asyncio.run(built.check("predict", record))
    assert len(stub.hits) == 1


def test_storage_is_tried_again_once_the_breaker_closes() -> None:
    record, _ = new_key("a1")
    stub = StubLimiter(failure=RedisConnectionError("refused"))
    built = limiter(fail_open=True, stub=stub)
    built.breaker_seconds = 0.0
    assert asyncio.run(built.check("predict", record)) == Decision({})
    stub.failure = None
    stub.remaining = 7
    decision = asyncio.run(built.check("predict", record))
    assert ";r=7;" in decision.headers["RateLimit"]
    assert len(stub.hits) == 2


# -- settings --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "PREDICT_LIMIT",
        "JOBS_LIMIT",
        "READS_LIMIT",
        "BOOTSTRAP_ADMIN_KEY_SHA256",
        "RATE_LIMIT_FAIL_OPEN",
    ):
        monkeypatch.delenv(f"MODELGATE_{name}", raising=False)
    return monkeypatch


def test_default_limits_parse(clean_env: pytest.MonkeyPatch) -> None:
    settings = GatewaySettings(_env_file=None)
    built = RateLimiter(
        AsyncRedis.from_url(UNREACHABLE),
        PREFIX,
        {
            "predict": settings.predict_limit,
            "jobs": settings.jobs_limit,
            "reads": settings.reads_limit,
        },
        fail_open=settings.rate_limit_fail_open,
    )
    assert set(built.defaults) == {"predict", "jobs", "reads"}
    assert settings.bootstrap_admin_key_sha256 is None


@pytest.mark.parametrize("name", ["PREDICT_LIMIT", "JOBS_LIMIT", "READS_LIMIT"])
def test_limit_settings_are_read(clean_env: pytest.MonkeyPatch, name: str) -> None:
    clean_env.setenv(f"MODELGATE_{name}", "42 per second")
    assert getattr(GatewaySettings(_env_file=None), name.lower()) == "42 per second"


@pytest.mark.parametrize("name", ["PREDICT_LIMIT", "JOBS_LIMIT", "READS_LIMIT"])
@pytest.mark.parametrize("value", ["lots", "", "600"])
def test_limit_settings_that_do_not_parse_are_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(f"MODELGATE_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        GatewaySettings(_env_file=None)


@pytest.mark.parametrize("value", ["abc", "0" * 63, "0" * 65, "g" * 64, key_digest("x") + " "])
def test_bootstrap_hash_must_be_64_hex_digits(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("MODELGATE_BOOTSTRAP_ADMIN_KEY_SHA256", value)
    with pytest.raises(ValidationError, match="bootstrap_admin_key_sha256"):
        GatewaySettings(_env_file=None)


def test_bootstrap_hash_of_64_hex_digits_is_accepted(clean_env: pytest.MonkeyPatch) -> None:
    digest = key_digest("bootstrap-admin-key-0123456789").upper()
    clean_env.setenv("MODELGATE_BOOTSTRAP_ADMIN_KEY_SHA256", digest)
    assert GatewaySettings(_env_file=None).bootstrap_admin_key_sha256 == digest


def test_empty_bootstrap_hash_is_none(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELGATE_BOOTSTRAP_ADMIN_KEY_SHA256", "")
    assert GatewaySettings(_env_file=None).bootstrap_admin_key_sha256 is None
