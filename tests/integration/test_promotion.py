"""Promotion and rollback are followed under load with no failed request; bad artifacts refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import load_iris

from devstack.processes import MlflowServer, wait_until
from registry.aliases import promote, rollback
from registry.client import Registry
from registry.loader import load_version
from registry.train import TrainOptions, train_and_register
from tests.integration.conftest import V2_OPTIONS, GatewayFactory


def _differing_rows(registry: Registry, name: str) -> tuple[list[list[float]], dict[int, list]]:
    v1, v2 = load_version(registry, name, 1), load_version(registry, name, 2)
    data = load_iris().data
    differ = v1.estimator.predict(data) != v2.estimator.predict(data)
    rows = data[differ][:5].tolist()
    assert rows, "version 2 must answer differently from version 1 on some rows"
    return rows, {1: v1.predict(rows).labels, 2: v2.predict(rows).labels}


class RequestLoop:
    """Threads that predict the same rows until stopped, recording every answer or failure."""

    def __init__(self, url: str, rows: list[list[float]], headers, threads: int = 4) -> None:
        self.url = url
        self.headers = dict(headers)
        self.rows = rows
        self.answers: list[tuple[float, int, list]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, json={"instances": self.rows})
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                body = response.json()
                self.answers.append((time.monotonic(), body["version"], body["predictions"]))

    def __enter__(self) -> RequestLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def first_time_of(self, version: int, after: float) -> float | None:
        times = [t for t, v, _ in list(self.answers) if v == version and t >= after]
        return min(times) if times else None


def _switch(loop: RequestLoop, version: int, action) -> float:
    started = time.monotonic()
    action()
    wait_until(lambda: loop.first_time_of(version, started) is not None, 30, f"version {version}")
    seen = loop.first_time_of(version, started)
    assert seen is not None
    time.sleep(1.0)  # keep the loop running on the new version for a while
    return seen - started


def test_promotion_and_rollback_under_load(
    registry: Registry, gateway_factory: GatewayFactory
) -> None:
    name = "iris_promo"
    train_and_register(registry, TrainOptions(), name=name)
    train_and_register(registry, V2_OPTIONS, name=name)
    rows, expected = _differing_rows(registry, name)
    gateway = gateway_factory(models=f"{name}@production", refresh_seconds="0.5")
    url = f"{gateway.url}/v1/models/{name}/predict"

    with RequestLoop(url, rows, gateway.http.headers) as loop:
        time.sleep(1.0)
        promoted_after = _switch(loop, 2, lambda: promote(registry, name, 2))
        rolled_back_after = _switch(loop, 1, lambda: rollback(registry, name))

    assert loop.failures == []
    assert len(loop.answers) > 50
    for _, version, predictions in loop.answers:
        assert predictions == expected[version], f"version {version} answered wrongly"
    # After each switch no answer comes from the older version again (one swap, not a flicker).
    ordered = sorted(loop.answers)
    switches = sum(1 for a, b in zip(ordered, ordered[1:], strict=False) if a[1] != b[1])
    assert switches <= 2 + 4  # at most one overlap per worker thread around each swap
    print(
        f"\nswap delay: promotion {promoted_after:.2f} s, rollback {rolled_back_after:.2f} s, "
        f"refresh interval 0.5 s, {len(loop.answers)} answers, 0 failures"
    )
    assert promoted_after < 0.5 + 5 and rolled_back_after < 0.5 + 5


def _artifact_dir(server: MlflowServer, registry: Registry, name: str, version: int) -> Path:
    uri = registry.download_uri(
        name, version
    )  # mlflow-artifacts:/<experiment>/models/<id>/artifacts
    return server.artifacts / uri.removeprefix("mlflow-artifacts:/")


def test_changed_artifact_is_refused_and_old_version_keeps_serving(
    registry: Registry, mlflow_server: MlflowServer, gateway_factory: GatewayFactory
) -> None:
    name = "iris_tamper"
    train_and_register(registry, TrainOptions(), name=name)
    train_and_register(registry, V2_OPTIONS, name=name)
    gateway = gateway_factory(models=f"{name}@production", refresh_seconds="0.3")
    url = f"/v1/models/{name}/predict"

    skops_file = _artifact_dir(mlflow_server, registry, name, 2) / "model.skops"
    assert skops_file.is_file()
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")
    promote(registry, name, 2)

    wait_until(
        lambda: gateway.http.get("/readyz").json()["models"][name]["last_error"],
        15,
        "the refusal",
    )
    state = gateway.http.get("/readyz").json()["models"][name]
    assert state["version"] == 1 and "SHA-256" in state["last_error"]
    time.sleep(1.0)  # several refresh rounds later, still version 1
    response = gateway.http.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert response.status_code == 200 and response.json()["version"] == 1
    pinned = gateway.http.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]], "version": 2})
    # Refused for a lasting reason: 503 with the reason, and no Retry-After (a retry cannot help).
    assert pinned.status_code == 503 and "retry-after" not in pinned.headers
    assert pinned.json()["error"]["code"] == "model_unavailable"
    assert "SHA-256" in pinned.json()["error"]["message"]
    assert "digest mismatch" in gateway.log_path.read_text()


def test_gateway_started_before_the_model_exists_becomes_ready(
    registry: Registry, gateway_factory: GatewayFactory
) -> None:
    name = "iris_late"
    gateway = gateway_factory(ready=False, models=f"{name}@production")
    not_ready = gateway.http.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "loading"
    assert gateway.http.get("/health").status_code == 503
    predict = gateway.http.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]})
    assert predict.status_code == 503 and predict.headers["retry-after"]
    train_and_register(registry, TrainOptions(n_estimators=10), name=name)
    gateway.wait_ready(30)
    answer = gateway.http.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.status_code == 200
    assert np.asarray(answer.json()["probabilities"]).shape == (1, 3)
