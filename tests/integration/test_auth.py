"""API keys and rate limits across two real gateway processes sharing one real Redis."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from redis import Redis

from devstack.processes import VENV_BIN, Gateway, RedisServer, free_port, wait_until
from gateway.app import create_app
from gateway.guard.keys import KeyStore, key_digest
from gateway.http.shapes import MLFLOW, V2, shape_of_path
from gateway.openapi import PUBLIC_PATHS
from gateway.settings import GatewaySettings
from registry.model import LoadedModel
from tests.integration.conftest import KEY_PREFIX, GatewayFactory, make_key

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
BOOTSTRAP_KEY = "bootstrap-admin-secret-for-tests-0123456789"
REFRESH = 0.3


@pytest.fixture(scope="module")
def pair(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]) -> tuple[Gateway, Gateway]:
    settings = {
        "enable_docs": "true",
        "keys_refresh_seconds": str(REFRESH),
        "bootstrap_admin_key_sha256": key_digest(BOOTSTRAP_KEY),
    }
    return gateway_factory(**settings), gateway_factory(**settings)


def _post(
    gateway: Gateway, key: str | None, path: str = "/v1/models/iris/predict"
) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(gateway.url + path, json=ROW, headers=headers, timeout=30)


def test_limit_is_shared_and_exact_under_concurrency(
    pair: tuple[Gateway, Gateway], redis_durable: RedisServer
) -> None:
    key = make_key(redis_durable.url, predict_limit="100/minute")
    wait_until(lambda: all(_post(g, key).status_code == 200 for g in pair), 10, "key known")
    # The probe above spent two; start the window afresh with a second key of the same limit.
    key = make_key(redis_durable.url, predict_limit="100/minute")
    time.sleep(REFRESH * 3)

    def one(i: int) -> httpx.Response:
        return _post(pair[i % 2], key)

    with ThreadPoolExecutor(max_workers=60) as pool:
        responses = list(pool.map(one, range(300)))
    statuses = Counter(r.status_code for r in responses)
    print(f"\n300 concurrent requests on a 100/minute key over two gateways: {dict(statuses)}")
    assert statuses == {200: 100, 429: 200}
    for response in responses:
        assert response.headers["ratelimit-policy"] == '"predict";q=100;w=60'
        assert re.fullmatch(r'"predict";r=\d+;t=\d+', response.headers["ratelimit"])
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["ratelimit"].startswith('"predict";r=0;')
            error = response.json()["error"]
            assert error["code"] == "rate_limited" and error["request_id"]


def _modelgate_keys(redis: RedisServer, *args: str, stdin: str | None = None) -> str:
    env = {
        "MODELGATE_REDIS_URL": redis.url,
        "MODELGATE_KEY_PREFIX": KEY_PREFIX,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [str(VENV_BIN / "modelgate"), "keys", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout


def _until_all(pair: tuple[Gateway, Gateway], key: str, status: int, timeout: float) -> float:
    started = time.monotonic()
    wait_until(
        lambda: all(_post(g, key).status_code == status for g in pair),
        timeout,
        f"status {status} on both gateways",
        interval=0.02,
    )
    return time.monotonic() - started


def test_create_use_revoke_and_import_with_the_cli(
    pair: tuple[Gateway, Gateway], redis_durable: RedisServer
) -> None:
    created = _modelgate_keys(
        redis_durable, "create", "--name", "ci", "--owner", "acme"
    ).splitlines()
    key = created[-1]
    key_id = re.search(r"created key (\w+)", created[0]).group(1)  # type: ignore[union-attr]
    assert key.startswith(f"mg_{key_id}_") and len(key.split("_", 2)[2]) >= 43
    accepted_after = _until_all(pair, key, 200, 10)

    listing = _modelgate_keys(redis_durable, "list")
    assert key_id in listing and key not in listing and key_digest(key) not in listing

    _modelgate_keys(redis_durable, "revoke", key_id)
    _until_all(pair, key, 401, 10)
    # The delay itself, timed from the write in Redis (the CLI's start-up is not part of it).
    timed = make_key(redis_durable.url)
    _until_all(pair, timed, 200, 10)
    with Redis.from_url(redis_durable.url) as client:
        store = KeyStore(client, KEY_PREFIX)
        record = store.find_by_value(timed)
        assert record is not None
        store.revoke(record.id)
    revoked_after = _until_all(pair, timed, 401, 10)
    print(
        f"\nkey refresh {REFRESH} s: new key accepted on both after {accepted_after:.2f} s "
        f"(after the CLI returned), revoked key refused on both {revoked_after:.2f} s "
        "after the revocation was written"
    )
    assert revoked_after < REFRESH + 2.0

    legacy = "the-key-our-old-clients-send-1234"
    _modelgate_keys(
        redis_durable, "import", "--name", "old", "--owner", "acme", stdin=legacy + "\n"
    )
    _until_all(pair, legacy, 200, 10)
    bearer = httpx.post(
        pair[0].url + "/v1/models/iris/predict",
        json=ROW,
        headers={"Authorization": f"Bearer {legacy}"},
    )
    assert bearer.status_code == 200
    # Logs name the key id and owner, never the key.
    log = pair[0].log_path.read_text()
    assert '"owner":"acme"' in log and legacy not in log and key not in log


def test_401_403_are_envelopes_that_do_not_say_why(
    pair: tuple[Gateway, Gateway], redis_durable: RedisServer
) -> None:
    gateway = pair[0]
    jobs_only = make_key(redis_durable.url, scopes=("jobs",))
    revoked = make_key(redis_durable.url)
    with Redis.from_url(redis_durable.url) as client:
        store = KeyStore(client, KEY_PREFIX)
        store.revoke(store.find_by_value(revoked).id)  # type: ignore[union-attr]
    time.sleep(REFRESH * 3)
    answers = [
        _post(gateway, None),
        _post(gateway, "nonsense-key-value-0000000000"),
        _post(gateway, "mg_000000000000_" + "x" * 43),  # the shape of a key, unknown id
        _post(gateway, revoked),
        _post(gateway, revoked[:-1] + ("A" if revoked[-1] != "A" else "B")),  # wrong secret
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.json()["error"]["message"] for r in answers}) == 1
    assert answers[0].json()["error"]["message"] == "Invalid or missing API key"
    forbidden = _post(gateway, jobs_only)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    admin = httpx.post(
        gateway.url + "/v1/admin/models/iris/reload", headers={"X-API-Key": BOOTSTRAP_KEY}
    )
    assert admin.status_code == 200 and admin.json()["version"] == 1
    not_admin = httpx.post(
        gateway.url + "/v1/admin/models/iris/reload", headers={"X-API-Key": jobs_only}
    )
    assert not_admin.status_code == 403


def _walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI keeps included routers as branches
            context_prefix = getattr(route.include_context, "prefix", "") or ""
            yield from _walk(route.original_router.routes, prefix + context_prefix)
        elif isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, prefix + route.path
        else:
            yield "GET", prefix + route.path


def _routes() -> list[tuple[str, str]]:
    app = create_app(GatewaySettings(_env_file=None, enable_docs=True))  # type: ignore[call-arg]
    found = list(_walk(app.routes))
    assert ("POST", "/v1/models/{model}/predict") in found  # the walk sees included routers
    return found


def test_every_non_public_route_needs_a_key(pair: tuple[Gateway, Gateway]) -> None:
    """Walks the app's own route table, so a route added later cannot slip through."""
    gateway = pair[0]
    checked = 0
    for method, path in _routes():
        url = gateway.url + re.sub(r"\{[^}]+\}", "iris", path)
        response = httpx.request(
            method, url, content=b"{}", headers={"content-type": "application/json"}
        )
        if path.split("?")[0] in PUBLIC_PATHS or path.startswith("/docs"):
            assert response.status_code != 401, path
        else:
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
            # In the route's protocol's own error shape (gateway/http/shapes.py).
            error = response.json()
            shape = shape_of_path(path)
            if shape == V2:
                assert set(error) == {"error"} and isinstance(error["error"], str), path
            elif shape == MLFLOW:
                assert error["error_code"] == "UNAUTHENTICATED", path
            else:
                assert error["error"]["code"] == "unauthorized", path
            checked += 1
    assert checked >= 6


def test_security_headers_and_no_cors_by_default(pair: tuple[Gateway, Gateway]) -> None:
    response = pair[0].http.get("/readyz", headers={"Origin": "https://evil.example"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in response.headers


def test_redis_down_keeps_auth_and_follows_the_limit_setting(
    tmp_path: Path, gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    redis = RedisServer(tmp_path / "redis", "durable")
    redis.start()
    try:
        key = make_key(redis.url, predict_limit="5/minute")
        revoked = make_key(redis.url)
        common = {"redis_url": redis.url, "cache_url": "", "keys_refresh_seconds": str(REFRESH)}
        metrics_port = free_port()
        open_gw = gateway_factory(api_key=key, metrics_port=str(metrics_port), **common)
        closed_gw = gateway_factory(api_key=key, rate_limit_fail_open="false", **common)
        assert _post(open_gw, key).status_code == 200
        assert _post(closed_gw, key).status_code == 200
        # Revoke one key before the outage; both gateways must keep refusing it.
        with Redis.from_url(redis.url) as client:
            store = KeyStore(client, KEY_PREFIX)
            store.revoke(store.find_by_value(revoked).id)  # type: ignore[union-attr]
        _until_all((open_gw, closed_gw), revoked, 401, 10)

        redis.stop(signal.SIGKILL)
        during_open = [_post(open_gw, key) for _ in range(8)]
        assert [r.status_code for r in during_open] == [200] * 8  # fail-open: admitted
        during_closed = _post(closed_gw, key)
        assert during_closed.status_code == 503  # fail-closed: refused, never a 500
        assert during_closed.headers["retry-after"]
        assert during_closed.json()["error"]["code"] == "rate_limit_unavailable"
        for gateway in (open_gw, closed_gw):
            assert _post(gateway, "wrong-key-000000000000000").status_code == 401
            assert _post(gateway, revoked).status_code == 401  # the snapshot still knows
        assert b"rate-limit storage failed" in open_gw.log_path.read_bytes()
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        counted = re.search(
            r'modelgate_rate_limit_storage_errors_total\{kind="predict",outcome="open"\} (\S+)',
            metrics,
        )
        assert counted is not None and float(counted.group(1)) >= 1

        redis.start()
        time.sleep(1.5)  # past the limiter's one-second breaker
        statuses = [_post(open_gw, key).status_code for _ in range(8)]
        assert 429 in statuses, statuses  # limits are enforced again
    finally:
        redis.stop()
