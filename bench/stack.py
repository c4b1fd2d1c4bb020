"""The processes a bench run starts: Redis x2, MLflow, the demo model, and the servers compared.

Modelgate runs as it ships (`python -m gateway`, auth and rate limits on, JSON access logs);
the others are started the way their users start them.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import joblib
import mlflow.artifacts
from redis import Redis

from devstack.processes import (
    VENV_BIN,
    Gateway,
    MlflowServer,
    RedisServer,
    Service,
    free_port,
    http_ok,
    wait_until,
)
from gateway.guard.keys import SCOPES, KeyStore
from registry.client import Registry
from registry.loader import load_version
from registry.model import LoadedModel
from registry.onnx_twin import ONNX_ARTIFACT_TAG
from registry.train import TrainOptions, train_and_register

KEY_PREFIX = "bench:"
S = TypeVar("S", bound=Service)
MODEL = "iris"


@dataclass
class Stack:
    """Shared services and the model files; `close()` stops everything started."""

    workdir: Path
    exits: ExitStack = field(default_factory=ExitStack)
    redis: RedisServer | None = None
    cache: RedisServer | None = None
    mlflow: MlflowServer | None = None
    model: LoadedModel | None = None
    api_key: str = ""

    def start(self) -> None:
        self.redis = self._started(RedisServer(self.workdir / "redis", "durable"))
        self.cache = self._started(RedisServer(self.workdir / "cache", "cache"))
        self.mlflow = self._started(MlflowServer(self.workdir / "mlflow"))
        registry = Registry(self.mlflow.url)
        published = train_and_register(registry, TrainOptions(), name=MODEL)
        if published.onnx_status != "verified":
            raise RuntimeError(f"the demo model has no verified ONNX twin: {published.onnx_status}")
        self.model = load_version(registry, MODEL, published.version)
        # The seed app's model.pkl and the ceiling's model.onnx: the same registered version.
        joblib.dump(self.model.estimator, self.workdir / "model.pkl")
        version = registry.version(MODEL, published.version)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{version.run_id}/{version.tags[ONNX_ARTIFACT_TAG]}",
            dst_path=str(self.workdir),
            tracking_uri=self.mlflow.url,
        )
        with Redis.from_url(self.redis.url) as redis:
            _, self.api_key = KeyStore(redis, KEY_PREFIX).create(
                name="bench",
                owner="bench",
                scopes=SCOPES,
                predict_limit="100000000/minute",
                reads_limit="100000000/minute",
                jobs_limit="100000/minute",
            )

    def _started(self, service: S) -> S:
        service.start()
        self.exits.callback(service.stop)
        return service

    def gateway(self, **settings: str) -> Gateway:
        """A Modelgate gateway as shipped, with `settings` (lower-case names, no prefix)."""
        assert self.redis and self.cache and self.mlflow
        env = {
            "MODELGATE_MLFLOW_TRACKING_URI": self.mlflow.url,
            "MODELGATE_REDIS_URL": self.redis.url,
            "MODELGATE_CACHE_URL": self.cache.url,
            "MODELGATE_KEY_PREFIX": KEY_PREFIX,
            "MODELGATE_METRICS_PORT": str(free_port()),
            "MODELGATE_MODELS": f"{MODEL}@production",
        }
        env.update({f"MODELGATE_{k.upper()}": v for k, v in settings.items()})
        gateway = Gateway(self.workdir / "gateways", env, self.api_key)
        try:
            gateway.start()
        except TimeoutError as exc:  # not ready: stop it, and say why from its log
            tail = gateway.log_tail(5)
            gateway.stop()
            raise TimeoutError(f"{exc}; the gateway's log ends:\n{tail}") from exc
        return gateway

    def seed_app(self) -> tuple[Service, str]:
        return self._uvicorn("bench.apps.seed_app:app", "seed", access_log=True)

    def ceiling_app(self) -> tuple[Service, str]:
        return self._uvicorn("bench.apps.ceiling_app:app", "ceiling", access_log=False)

    def _uvicorn(self, app: str, name: str, access_log: bool) -> tuple[Service, str]:
        port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--log-level", "warning",
        ]  # fmt: skip
        if not access_log:
            argv.append("--no-access-log")
        env = {
            **os.environ,
            "BENCH_MODEL_PATH": str(self.workdir / "model.pkl"),
            "BENCH_ONNX_PATH": str(self.workdir / "model.onnx"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        service = Service(name, argv, self.workdir / f"{name}.log", env)
        service.start()
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(url + "/docs"), 60, name)
        return service, url + "/predict"

    def mlflow_serve(self, model: str = MODEL, version: int | None = None) -> tuple[Service, str]:
        """`mlflow models serve --env-manager local` of a registered version (the demo
        model's unless given)."""
        assert self.mlflow and self.model
        port = free_port()
        argv = [
            str(VENV_BIN / "mlflow"), "models", "serve", "-m",
            f"models:/{model}/{version or self.model.version}", "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port), "-w", "1",
        ]  # fmt: skip
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.mlflow.url,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `uvicorn`
        }
        service = Service("mlflow-serve", argv, self.workdir / "mlflow-serve.log", env)
        service.start()
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(url + "/ping"), 120, "mlflow models serve")
        return service, url + "/invocations"

    def close(self) -> None:
        self.exits.close()
