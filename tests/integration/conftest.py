"""Session fixtures: real redis-servers, a real mlflow server, registered models, gateways."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from devstack.processes import Gateway, MlflowServer, RedisServer, Worker, stop_all, wait_until
from gateway.guard.keys import SCOPES, KeyStore
from kernel.settings import RegistrySettings
from registry.client import Registry, configure_mlflow_http
from registry.loader import load_version
from registry.model import LoadedModel
from registry.train import TrainOptions, train_and_register

#: Version 2 of a test model: a weaker forest whose answers differ from version 1's.
V2_OPTIONS = TrainOptions(n_estimators=3, max_depth=1, seed=7)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mlflow_server(workdir: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(workdir / "mlflow")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(mlflow_server: MlflowServer) -> Registry:
    os.environ.pop("MODELGATE_MLFLOW_TRACKING_URI", None)
    configure_mlflow_http(
        RegistrySettings(mlflow_tracking_uri=mlflow_server.url, registry_max_retries=0)
    )
    return Registry(mlflow_server.url)


@pytest.fixture(scope="session")
def iris(registry: Registry) -> dict[int, LoadedModel]:
    """`iris` with version 1 (the legacy app's forest, alias production) and a different one, 2."""
    first = train_and_register(registry, TrainOptions(), name="iris")
    second = train_and_register(registry, V2_OPTIONS, name="iris")
    return {v: load_version(registry, "iris", v) for v in (first.version, second.version)}


@pytest.fixture(scope="session")
def redis_durable(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis-durable", "durable")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_durable: RedisServer) -> Iterator[Redis]:
    """A client of the durable redis-server (the job store's tests)."""
    with Redis.from_url(redis_durable.url) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own, so that no other test's jobs count against its owners."""
    return f"mgjob{secrets.token_hex(3)}:"


@pytest.fixture(scope="session")
def redis_cache(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis-cache", "cache")
    server.start()
    yield server
    server.stop()


#: Gateways and workers the factories started for the test module now running (the shared
#: session gateway aside). They are stopped when the module ends: an idle gateway still polls
#: MLflow and Redis every 0.3 s, and on two cores a session's worth of them slows every test.
_MODULE_PROCESSES: list[Gateway | Worker] = []


@pytest.fixture(scope="module", autouse=True)
def _stop_the_modules_processes() -> Iterator[None]:
    yield
    started = list(_MODULE_PROCESSES)
    _MODULE_PROCESSES.clear()
    stop_all(started)


GatewayFactory = Callable[..., Gateway]
WorkerFactory = Callable[..., Worker]

#: Settings shared by test gateways and workers: small chunks, a short visibility timeout. The
#: task time limit (soft: 5 s less) must outlast a chunk whose worker child was just killed and
#: reloads its model while three test processes share two cores; the visibility timeout must
#: outlast the time limit, or a running chunk would be delivered twice.
JOB_SETTINGS = {
    "MODELGATE_CHUNK_SIZE": "5000",
    "MODELGATE_VISIBILITY_TIMEOUT_SECONDS": "30",
    "MODELGATE_UNACKED_RESTORE_INTERVAL_SECONDS": "1",
    "MODELGATE_TASK_TIME_LIMIT_SECONDS": "25",
    "MODELGATE_MAX_RUNNING_JOBS_PER_OWNER": "50",
    "MODELGATE_MAX_STORED_ROWS_PER_OWNER": "100000000",
}

#: Every test gateway uses this key prefix, so nothing collides with another user of a server.
KEY_PREFIX = "mgtest:"


def make_key(redis_url: str, **options: object) -> str:
    """Store a key with every scope (and generous limits unless given) and return its value."""
    spec: dict[str, object] = {
        "name": "test",
        "owner": "tests",
        "scopes": SCOPES,
        "predict_limit": "100000/minute",
        "reads_limit": "100000/minute",
    }
    spec.update(options)
    with Redis.from_url(redis_url) as redis:
        _, value = KeyStore(redis, KEY_PREFIX).create(**spec)  # type: ignore[arg-type]
    return value


#: `pip_requirements` for the tests' ordinary logging: named (none), MLflow does not infer them,
#: which loads each model in a subprocess (seconds per model); Modelgate never installs them.
NO_REQUIREMENTS: list[str] = []


def logging_to(tracking_uri: str) -> Callable[[], None]:
    """Point MLflow's fluent API (`mlflow.<flavor>.log_model`, as users log) at `tracking_uri`
    and return what puts the environment back: `mlflow.set_tracking_uri` exports
    MLFLOW_TRACKING_URI (and the registry's), which no later test may inherit."""
    import mlflow

    exported = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)

    def restore() -> None:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            os.environ.pop(key)
        os.environ.update(exported)

    return restore


def known(gateway: Gateway, key: str) -> None:
    """Wait until the gateway's key snapshot holds `key` (refreshed every 0.3 s in tests)."""
    wait_until(
        lambda: httpx.get(gateway.url + "/v1/jobs", headers={"X-API-Key": key}).status_code != 401,
        10,
        "the new key",
    )


@pytest.fixture(scope="session")
def gateway_factory(
    workdir: Path, mlflow_server: MlflowServer, redis_durable: RedisServer, redis_cache: RedisServer
) -> Iterator[GatewayFactory]:
    """Start gateways with test-fast settings; each is stopped at the end of the session."""
    started: list[Gateway] = []

    def start(
        ready: bool = True, api_key: str | None = "new", session: bool = False, **settings: str
    ) -> Gateway:
        """A gateway with `settings` (MODELGATE_ names, lower case, without the prefix); with
        `api_key="new"` a key with every scope is created in its Redis first. It is stopped
        when the test module ends, or with `session` when the session does."""
        env = {
            **JOB_SETTINGS,
            "MODELGATE_MLFLOW_TRACKING_URI": mlflow_server.url,
            "MODELGATE_REDIS_URL": redis_durable.url,
            "MODELGATE_CACHE_URL": redis_cache.url,
            "MODELGATE_KEY_PREFIX": KEY_PREFIX,
            "MODELGATE_KEYS_REFRESH_SECONDS": "0.3",
            # Each refresh asks MLflow for every served alias: 1 s unless a test needs faster.
            "MODELGATE_REFRESH_SECONDS": "1.0",
            "MODELGATE_MODEL_LOAD_RETRY_SECONDS": "0.3",
            "MODELGATE_REGISTRY_MAX_RETRIES": "0",
            "MODELGATE_REGISTRY_TIMEOUT_SECONDS": "5",
            "MODELGATE_LOG_LEVEL": "INFO",
            # No load balancer in front: a drain would only make every stop 5 s longer.
            "MODELGATE_DRAIN_SECONDS": "0",
            # Every test client is 127.0.0.1, and many tests send wrong keys on purpose: the
            # failed-authentication throttle is tested on its own (test_edge_limits.py).
            "MODELGATE_AUTH_FAILURE_LIMIT": "100000/minute",
        }
        env.update({f"MODELGATE_{k.upper()}": v for k, v in settings.items()})
        if api_key == "new":
            api_key = make_key(env["MODELGATE_REDIS_URL"])
        gateway = Gateway(workdir / "gateways", env, api_key)
        started.append(gateway)
        if not session:
            _MODULE_PROCESSES.append(gateway)
        try:
            gateway.start(ready=ready)
        except TimeoutError:
            print(gateway.log_tail())
            raise
        return gateway

    yield start
    stop_all(started)


@pytest.fixture(scope="session")
def worker_factory(
    workdir: Path, mlflow_server: MlflowServer, redis_durable: RedisServer
) -> Iterator[WorkerFactory]:
    """Start `python -m worker` processes with the test job settings."""
    started: list[Worker] = []

    def start(**settings: str) -> Worker:
        env = {
            **JOB_SETTINGS,
            "MODELGATE_MLFLOW_TRACKING_URI": mlflow_server.url,
            "MODELGATE_REDIS_URL": redis_durable.url,
            "MODELGATE_KEY_PREFIX": KEY_PREFIX,
            "MODELGATE_REGISTRY_MAX_RETRIES": "0",
            "MODELGATE_WORKER_CONCURRENCY": "2",
        }
        env.update({f"MODELGATE_{k.upper()}": v for k, v in settings.items()})
        worker = Worker(workdir / "workers", env)
        started.append(worker)
        _MODULE_PROCESSES.append(worker)
        try:
            worker.start()
        except TimeoutError:
            print(worker.log_tail())
            raise
        return worker

    yield start
    stop_all(started)


@pytest.fixture(scope="session")
def gateway(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]) -> Gateway:
    """One shared gateway serving iris@production; tests must not move that alias."""
    return gateway_factory(max_sync_rows="1000", max_body_bytes="65536", session=True)
