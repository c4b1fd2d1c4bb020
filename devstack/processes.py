"""Real service processes for integration tests: redis-server, mlflow server, the gateway."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


class Service:
    """A child process in its own session, so that its children die with it."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.log_path = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None:
            return
        self.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        # Children of the session (mlflow's uvicorn) may outlive the leader: sweep the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(services: list[Service]) -> None:
    """Stop services at once rather than one after the other (each may take seconds)."""
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        list(pool.map(lambda service: service.stop(), services))


class RedisServer(Service):
    """An isolated `redis-server` on a free port; it can be stopped and started again."""

    def __init__(self, workdir: Path, role: str = "durable") -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(workdir),
        ]
        if role == "durable":
            argv += ["--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""]
        else:
            argv += [
                "--maxmemory",
                "64mb",
                "--maxmemory-policy",
                "allkeys-lru",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        super().__init__(f"redis-{role}", argv, workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        super().start()
        wait_until(self._answers, 10, self.name)

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


class MlflowServer(Service):
    """`mlflow server` on sqlite with proxied artifact storage under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.artifacts = workdir / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        argv = [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.artifacts),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        super().__init__("mlflow", argv, workdir / "mlflow.log", env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        wait_until(lambda: http_ok(self.url + "/health"), 90, "mlflow server", interval=0.3)


class MlflowModelServer(Service):
    """`mlflow models serve --env-manager local` of `model_uri` (`models:/iris/1`), loaded from
    the MLflow server at `tracking_uri`, on a free port; none of this process's MLFLOW_*."""

    def __init__(self, workdir: Path, model_uri: str, tracking_uri: str) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(VENV_BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager",
            "local", "-h", "127.0.0.1", "-p", str(self.port), "-w", "1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = tracking_uri
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # it runs `uvicorn`
        super().__init__("mlflow-serve", argv, workdir / f"mlflow-serve-{self.port}.log", env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        super().start()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until(lambda: http_ok(self.url + "/ping"), timeout, "mlflow models serve", 0.3)


class Gateway(Service):
    """`python -m gateway` with settings given as MODELGATE_* environment variables.

    `http` is a client that sends `api_key` (when set) with every request.
    """

    def __init__(self, workdir: Path, settings: dict[str, str], api_key: str | None = None) -> None:
        self.port = free_port()
        self.api_key = api_key
        self._http: httpx.Client | None = None
        env = {"MODELGATE_HOST": "127.0.0.1", "MODELGATE_PORT": str(self.port), **settings}
        _start_module(self, "gateway", workdir, self.port, env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"X-API-Key": self.api_key} if self.api_key else {}
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        return self._http

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        super().stop(sig, timeout)

    def start(self, ready: bool = True) -> None:
        super().start()
        wait_until(lambda: http_ok(self.url + "/healthz"), 60, "gateway")
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: http_ok(self.url + "/readyz"), timeout, "gateway models")


class Worker(Service):
    """`python -m worker` (a Celery worker, prefork) with MODELGATE_* settings."""

    def __init__(self, workdir: Path, settings: dict[str, str]) -> None:
        self.health_port = free_port()
        env = {**settings, "MODELGATE_WORKER_HEALTH_PORT": str(self.health_port)}
        _start_module(self, "worker", workdir, self.health_port, env)

    def start(self) -> None:
        super().start()
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{self.health_port}/readyz"), 60, "worker", 0.2
        )
        # The pool is up once Celery says so in its log.
        wait_until(lambda: b"ready." in self.log_path.read_bytes(), 60, "worker pool", 0.2)

    def pool_children(self) -> list[int]:
        """Pids of the prefork pool processes (children of the worker's main process)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()]


def _start_module(
    service: Service, module: str, workdir: Path, port: int, settings: dict[str, str]
) -> None:
    """Set up `service` as `python -m module` with only the given MODELGATE_* settings, run in
    `workdir` (away from any checkout's var/stack.env), logging to `module-port.log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(settings)
    workdir.mkdir(parents=True, exist_ok=True)
    Service.__init__(
        service,
        module,
        [sys.executable, "-m", module],
        workdir / f"{module}-{port}.log",
        env,
        cwd=workdir,
    )
