"""The sync fast path with real processes: prediction cache, coalescing, ONNX twin, optimize."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from devstack.processes import VENV_BIN, Gateway, MlflowServer, RedisServer, free_port
from registry.client import Registry
from registry.model import LoadedModel
from registry.onnx_twin import ONNX_SHA_TAG
from registry.train import TrainOptions, train_and_register
from tests.integration.conftest import GatewayFactory

pytestmark = pytest.mark.integration

ROWS = load_iris().data[::5].tolist()  # 30 rows of all three classes


def predict(gateway: Gateway, rows: list[list[float]], **extra: object) -> httpx.Response:
    response = gateway.http.post("/v1/models/iris/predict", json={"instances": rows, **extra})
    assert response.status_code == 200, response.text
    return response


def counts(response: httpx.Response) -> tuple[int, int]:
    return int(response.headers["x-cache-hits"]), int(response.headers["x-cache-misses"])


def test_repeated_rows_come_from_the_cache_redis_and_versions_never_mix(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    # No in-process layer: every hit below is a Redis hit, in one MGET per request.
    gateway = gateway_factory(cache_mode="on", local_cache_size="0")
    tag = [[7.77, 3.1, 5.5, 1.9]]  # a row no other test sends, so the first ask is a miss
    first = predict(gateway, ROWS + tag)
    assert counts(first)[1] >= 1 and sum(counts(first)) == len(ROWS) + 1
    # Background writes land within moments.
    deadline = time.monotonic() + 5
    again = predict(gateway, ROWS + tag)
    while counts(again) != (len(ROWS) + 1, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
        again = predict(gateway, ROWS + tag)
    assert counts(again) == (len(ROWS) + 1, 0)
    assert again.json() == first.json()
    # Cached and fresh rows in one request keep their order.
    new_row = [4.44, 2.9, 1.4, 0.2]
    mixed = predict(gateway, [ROWS[0], new_row, ROWS[-1]])
    assert counts(mixed) == (2, 1)
    expected = iris[1].predict([ROWS[0], new_row, ROWS[-1]])
    assert mixed.json()["predictions"] == expected.labels
    assert mixed.json()["probabilities"] == expected.probabilities
    # Version 2 never answers from version 1's entries.
    pinned = predict(gateway, ROWS + tag, version=2)
    assert pinned.json()["version"] == 2 and counts(pinned) == (0, len(ROWS) + 1)
    assert pinned.json()["predictions"] == iris[2].predict(ROWS + tag).labels


def test_a_dead_cache_costs_nothing_but_hits(
    tmp_path: Path, gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    cache = RedisServer(tmp_path / "cache", "cache")
    cache.start()
    gateway = gateway_factory(cache_mode="on", local_cache_size="0", cache_url=cache.url)
    predict(gateway, ROWS)
    cache.stop(signal.SIGKILL)
    started = time.monotonic()
    for _ in range(20):
        response = predict(gateway, ROWS)
        assert response.json()["predictions"] == iris[1].predict(ROWS).labels
        assert counts(response) == (0, len(ROWS))
    # One timeout (50 ms) opens the breaker; the rest skip the cache entirely.
    assert time.monotonic() - started < 5


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_rows(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    metrics_port = free_port()
    gateway = gateway_factory(
        runtime="sklearn",
        cache_mode="off",
        predict_threads="1",
        metrics_port=str(metrics_port),
    )
    rows = load_iris().data.tolist()  # 150 different rows, one per request
    assert gateway.http  # one client for every thread (it is made on first use)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda row: predict(gateway, [row]).json(), rows))
    # Exactly scikit-learn's, rounded to 5 decimals as every runtime's probabilities are.
    expected = np.round(iris[1].estimator.predict_proba(np.asarray(rows)), 5)
    for answer, want, row in zip(answers, expected, rows, strict=True):
        assert np.allclose(answer["probabilities"][0], want, atol=1e-12, rtol=0), row
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    calls = _sample(metrics, "modelgate_batch_requests_count")
    requests = _sample(metrics, "modelgate_batch_requests_sum")
    assert requests == len(rows)
    assert calls < len(rows) / 2, f"{calls} model calls for {len(rows)} requests"


def test_a_full_queue_answers_503_with_retry_after_and_nothing_else(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(
        runtime="sklearn", cache_mode="off", predict_threads="1", max_pending_predictions="2"
    )
    body = {"instances": load_iris().data[:200].tolist() * 5}  # 1000 rows: a slow call
    assert gateway.http  # one client for every thread (it is made on first use)
    with ThreadPoolExecutor(24) as pool:
        responses = list(
            pool.map(lambda _: gateway.http.post("/v1/models/iris/predict", json=body), range(48))
        )
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 503], statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "overloaded"
    assert predict(gateway, ROWS).status_code == 200


def test_optimize_gives_a_live_version_its_onnx_twin(
    mlflow_server: MlflowServer, registry: Registry, gateway_factory: GatewayFactory
) -> None:
    published = train_and_register(
        registry, TrainOptions(n_estimators=30), name="plain", onnx=False
    )
    assert published.onnx_status == "not converted"
    gateway = gateway_factory(models="plain@production")
    ask = gateway.http.post("/v1/models/plain/predict", json={"instances": ROWS})
    assert ask.headers["x-model-runtime"] == "sklearn"
    before = ask.json()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    result = subprocess.run(
        [str(VENV_BIN / "modelgate"), "--tracking-uri", mlflow_server.url, "optimize", "plain",
         str(published.version)],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"plain version {published.version}: onnx verified" in result.stdout
    assert "0 label mismatches" in result.stdout and "on split thresholds" in result.stdout
    sha = registry.version("plain", published.version).tags[ONNX_SHA_TAG]
    # Asked again, it keeps the verified twin rather than silently redoing it.
    again = subprocess.run(result.args, capture_output=True, text=True, timeout=180, env=env)
    assert again.returncode == 0, again.stderr
    assert "onnx already verified" in again.stdout and "--force" in again.stdout
    assert registry.version("plain", published.version).tags[ONNX_SHA_TAG] == sha

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ask = gateway.http.post("/v1/models/plain/predict", json={"instances": ROWS})
        if ask.headers["x-model-runtime"] == "onnx":
            break
        time.sleep(0.3)
    assert ask.headers["x-model-runtime"] == "onnx"
    assert ask.json()["predictions"] == before["predictions"]
    assert np.abs(np.subtract(ask.json()["probabilities"], before["probabilities"])).max() <= 1e-5
    listed = gateway.http.get("/v1/models/plain").json()["versions"]
    assert [(v["runtime"], v["onnx"]) for v in listed] == [("onnx", "verified")]


def test_a_tampered_onnx_file_is_refused_and_sklearn_serves(
    mlflow_server: MlflowServer, registry: Registry, gateway_factory: GatewayFactory
) -> None:
    published = train_and_register(registry, TrainOptions(n_estimators=10), name="tampered")
    assert published.onnx_status == "verified"
    stored = [
        path
        for path in Path(mlflow_server.artifacts).rglob(f"modelgate-onnx/v{published.version}/*")
        if published.run_id in path.parts
    ]
    assert len(stored) == 1, stored
    stored[0].write_bytes(stored[0].read_bytes() + b"\0")
    gateway = gateway_factory(models="tampered@production")
    ask = gateway.http.post("/v1/models/tampered/predict", json={"instances": ROWS})
    assert ask.status_code == 200 and ask.headers["x-model-runtime"] == "sklearn"
    listed = gateway.http.get("/v1/models/tampered").json()["versions"]
    assert listed[0]["onnx"].startswith("refused: ") and "SHA-256" in listed[0]["onnx"]


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")
