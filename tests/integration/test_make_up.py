"""`make up` itself, run the way a developer runs it, in a terminal, from a copy of the checkout.

On free ports: the stack gets ready, answers a prediction, the CLI reaches it with no flags
(through var/stack.env), SIGTERM to `make` stops every process it started (MLflow's child
server included), and a second `make up` reuses the registry instead of training again. Under
supervisord: a SIGKILLed gateway and worker come back with new pids while the others keep
theirs, the log says why they exited, the trainer runs once per start, var/ is the owner's
only (directories 700, files 600, Redis's AOF and MLflow's database included), and Ctrl-C ends
`make up` with status 0 and nothing left running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.supervised import Supervised

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
#: The venv running this test; `make up` uses it instead of creating one in the copy.
VENV = Path(sys.executable).parent.parent

READY_TIMEOUT_SECONDS = 180.0
TRAINER_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
#: Grandchildren (MLflow's uvicorn) may still be exiting when supervisord and make are gone.
ORPHAN_GRACE_SECONDS = 10.0
ROW = {"features": [[5.1, 3.5, 1.4, 0.2]]}

#: Not part of the source tree: at the top of the checkout, and anywhere below it.
_IGNORED_AT_TOP = {".git", ".venv", "var", "mlruns"}
_IGNORED_ANYWHERE = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory) == REPO
    return {
        name
        for name in names
        if name in _IGNORED_ANYWHERE
        or (top and name in _IGNORED_AT_TOP)
        or name.endswith((".egg-info", ".pyc"))
        or Path(directory, name) == VENV  # a venv in the checkout under another name
    }


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports() -> tuple[int, int, int]:
    """Gateway, MLflow and durable-Redis ports, all distinct, with the cache port (+1) free too."""
    for _ in range(100):
        gateway, mlflow, redis = _free_port(), _free_port(), _free_port()
        ports = {gateway, mlflow, redis, redis + 1}
        if len(ports) == 4 and redis + 1 <= 65535 and _port_is_free(redis + 1):
            return gateway, mlflow, redis
    raise RuntimeError("found no free ports")


def _clean_env() -> dict[str, str]:
    """The environment without MODELGATE_* settings or an outer make's flags and overrides."""
    dropped = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MODELGATE_") and key not in dropped
    }


def _processes() -> Iterator[tuple[int, str, str]]:
    """(pid, command line, cwd) of every process we may inspect, this one excluded."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone meanwhile, a zombie, or not ours to read
            continue
        yield int(entry.name), cmdline.strip(), cwd


def _belongs_to(root: Path, cmdline: str, cwd: str) -> bool:
    return str(root) in cmdline or cwd == str(root) or cwd.startswith(f"{root}/")


def _leftovers(root: Path, ports: tuple[int, ...]) -> list[str]:
    """Processes that belong to the stack started in `root` on `ports`."""
    alternatives = "|".join(str(port) for port in ports)
    # "--port 50123", "127.0.0.1:50123", "--port=50123": a port as an argument, not any digits.
    port_pattern = re.compile(rf"(?:^|[\s:=])(?:{alternatives})(?!\d)")
    return [
        f"{pid} (cwd {cwd}): {cmdline}"
        for pid, cmdline, cwd in _processes()
        if _belongs_to(root, cmdline, cwd) or port_pattern.search(cmdline)
    ]


def _kill_stack(root: Path) -> None:
    """Last resort after a failure: SIGKILL the processes running from the copy, by pid."""
    for pid, cmdline, cwd in _processes():
        if _belongs_to(root, cmdline, cwd):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class Stack:
    """One `make up` run in `root`, its output in `log`."""

    def __init__(self, root: Path, ports: tuple[int, int, int], log: Path) -> None:
        self.root = root
        self.gateway_port, self.mlflow_port, self.redis_port = ports
        self.grpc_port = _free_port()
        while self.grpc_port in (*ports, self.redis_port + 1):
            self.grpc_port = _free_port()
        self.all_ports = (*ports, self.redis_port + 1, self.grpc_port)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.terminal: int | None = None
        self.reader: threading.Thread | None = None
        self.supervised = Supervised(root / "var")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self) -> None:
        """`make up` in a terminal of its own (a pty, its controlling terminal), as typed."""
        env = _clean_env()
        env.update(
            GATEWAY_PORT=str(self.gateway_port),
            MLFLOW_PORT=str(self.mlflow_port),
            REDIS_PORT=str(self.redis_port),
            GRPC_PORT=str(self.grpc_port),
        )
        with self.log.open("ab") as out:
            out.write(b"\n===== make up =====\n")
        self.terminal, tty = os.openpty()
        self.proc = subprocess.Popen(
            ["make", "up", f"VENV={VENV}"],
            cwd=self.root,
            env=env,
            stdin=tty,
            stdout=tty,
            stderr=tty,
            start_new_session=True,
            # The new session's controlling terminal: Ctrl-C reaches its foreground group.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(tty)
        self.reader = threading.Thread(
            target=self._copy_terminal, args=(self.terminal,), daemon=True
        )
        self.reader.start()

    def _copy_terminal(self, terminal: int) -> None:
        """What the terminal shows, into the log (without the terminal's carriage returns)."""
        with self.log.open("ab") as out:
            while True:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # EIO: every process holding the terminal is gone
                    break
                if not data:
                    break
                out.write(data.replace(b"\r", b""))
                out.flush()

    def _close_terminal(self) -> None:
        if self.reader is not None:
            self.reader.join(timeout=10)
            self.reader = None
        if self.terminal is not None:
            os.close(self.terminal)
            self.terminal = None

    def wait_ready(self, client: httpx.Client) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"make up exited with {self.proc.returncode} before ready")
            try:
                if client.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"gateway not ready within {READY_TIMEOUT_SECONDS:.0f} s")

    def wait_trainer_done(self) -> None:
        """The one-shot trainer finished (exit status 0) and is not run again."""
        deadline = time.monotonic() + TRAINER_TIMEOUT_SECONDS
        while self.supervised.states().get("trainer") != "EXITED":
            if time.monotonic() > deadline:
                pytest.fail("the demo trainer did not finish")
            time.sleep(0.5)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to make only, as a supervisor or `kill` would; then nothing may be left."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        self._wait_stopped("SIGTERM")
        # make forwards SIGTERM to its recipe, waits for it, then kills itself with SIGTERM.
        assert self.proc.returncode == -signal.SIGTERM

    def interrupt(self) -> None:
        """Ctrl-C typed in the terminal: `make up` ends with status 0, nothing left running."""
        assert self.proc is not None and self.terminal is not None
        os.write(self.terminal, b"\x03")
        self._wait_stopped("Ctrl-C")
        assert self.proc.returncode == 0, self.proc.returncode

    def _wait_stopped(self, how: str) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make up still running {STOP_TIMEOUT_SECONDS:.0f} s after {how}")
        deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
        while left := _leftovers(self.root, self.all_ports):
            if time.monotonic() > deadline:
                pytest.fail(f"processes left after {how}:\n" + "\n".join(left))
            time.sleep(0.2)
        self._close_terminal()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        _kill_stack(self.root)
        self._close_terminal()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _registered_versions(root: Path) -> list[int]:
    """`modelgate versions iris` run in the copy with no flags and no MODELGATE_* variables."""
    result = subprocess.run(
        [str(VENV / "bin" / "modelgate"), "versions", "iris"],
        cwd=root,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"modelgate versions failed:\n{result.stdout}{result.stderr}"
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["MODEL", "VERSION"], result.stdout
    return [int(row.split()[1]) for row in rows]


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    """The source tree copied with its mtimes, so the venv's install stamp stays valid."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("make up needs the tests to run from a venv (make venv)")
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    root = tmp_path / "checkout"
    shutil.copytree(REPO, root, ignore=_ignore, symlinks=True)
    # `make up` depends on `make venv`; run it here, in the real checkout, if it is stale, so the
    # copy never reinstalls the editable package from a temporary directory.
    make_venv = ["make", "--no-print-directory", "venv", f"VENV={VENV}"]
    if subprocess.run([*make_venv, "-q"], cwd=REPO, env=_clean_env()).returncode != 0:
        subprocess.run(make_venv, cwd=REPO, env=_clean_env(), check=True)
    assert subprocess.run([*make_venv, "-q"], cwd=root, env=_clean_env()).returncode == 0
    return root


#: The gateway's alias refresh under make up (the setting's default).
MAKE_UP_REFRESH_SECONDS = 10.0
#: Logs a forest as its users log it (skops, the trusted type MLflow 3 asks for) and aliases it.
LOG_ORDINARILY = """
import mlflow, sys
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
x, y = load_iris(return_X_y=True, as_frame=True)
forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
mlflow.sklearn.log_model(forest, name="model", registered_model_name="churn",
                         skops_trusted_types=["sklearn.tree._tree.Tree"], input_example=x.head(2))
MlflowClient().set_registered_model_alias("churn", "production", "1")
"""


def _log_the_ordinary_way(stack: Stack, client: httpx.Client, headers: dict[str, str]) -> float:
    """Seconds from the alias being set to the gateway answering the new model."""
    # The user's shell: no MLFLOW_* a test of this process exported (set_tracking_uri does).
    env = {k: v for k, v in _clean_env().items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{stack.mlflow_port}"
    logged = subprocess.run(
        [sys.executable, "-c", LOG_ORDINARILY],
        env=env,
        cwd=stack.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert logged.returncode == 0, logged.stderr[-3000:]
    aliased = time.monotonic()
    rows = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    while True:
        answer = client.post(f"{stack.url}/v1/models/churn/predict", json=rows, headers=headers)
        if answer.status_code == 200:
            assert answer.json()["version"] == 1 and answer.json()["predictions"] == [0]
            return time.monotonic() - aliased
        assert time.monotonic() - aliased < 3 * MAKE_UP_REFRESH_SECONDS + 30, answer.text
        time.sleep(0.2)


def _run_job(stack: Stack, client: httpx.Client, headers: dict[str, str]) -> None:
    """A one-row CSV batch job, submitted and waited for until it succeeds."""
    upload = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
    job = client.post(
        f"{stack.url}/v1/models/iris/jobs",
        content=upload,
        headers={**headers, "content-type": "text/csv"},
    )
    assert job.status_code == 202, job.text
    job_url = f"{stack.url}/v1/jobs/{job.json()['job_id']}"
    deadline = time.monotonic() + 60
    while client.get(job_url, headers=headers).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)


#: The processes that run for good; the trainer finishes.
LONG_RUNNING = ("redis", "cache", "mlflow", "gateway", "worker")
RESTART_TIMEOUT_SECONDS = 90.0


def _kill_and_see_restarted(stack: Stack, client: httpx.Client, victims: tuple[str, ...]) -> None:
    """SIGKILL the victims' processes (not their supervisor's): each comes back with a new pid,
    the others keep theirs, the log says how each one ended, and the gateway is ready again."""
    before = stack.supervised.pids()
    assert all(before[name] for name in LONG_RUNNING), before
    for name in victims:
        pid = before[name]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while True:
        after = stack.supervised.pids()
        restarted = all(after[name] not in (None, before[name]) for name in victims)
        if restarted and _ready(stack, client):
            break
        assert time.monotonic() - killed_at < RESTART_TIMEOUT_SECONDS, (after, before)
        time.sleep(0.3)
    print(f"{', '.join(victims)} SIGKILLed: ready again in {time.monotonic() - killed_at:.1f} s")
    for name in set(LONG_RUNNING) - set(victims):
        assert after[name] == before[name], f"{name} was restarted too"
    text = stack.text()
    for name in victims:
        # Killed after its first 10 s, it is restarted at once; sooner, after a backoff.
        said = rf"supervisor +\| {name} killed by SIGKILL (\(unexpected\); restarting now|"
        said += r"within 10 s of starting; retry 1 of 10 in 1 s)\n"
        assert re.search(said, text), name


def _ready(stack: Stack, client: httpx.Client) -> bool:
    try:
        return client.get(f"{stack.url}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _looser_than_owner_only(var: Path) -> list[str]:
    """Paths under var/ (itself included) that another user could read: directories not 700 or
    stricter, anything else not 600 or stricter (the control socket is 600 too)."""
    loose = []
    for path in [var, *var.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        allowed = 0o700 if path.is_dir() and not path.is_symlink() else 0o600
        if mode & ~allowed:
            loose.append(f"{oct(mode)} {path.relative_to(var.parent)}")
    return loose


def test_make_up_serves_restarts_crashes_stops_cleanly_and_reuses_the_registry(
    checkout_copy: Path, tmp_path: Path
) -> None:
    stack = Stack(checkout_copy, _free_ports(), tmp_path / "make-up.log")
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            stack.start()
            stack.wait_ready(client)
            stack_env = (checkout_copy / "var" / "stack.env").read_text()
            assert f"MODELGATE_PORT={stack.gateway_port}\n" in stack_env
            assert f"http://127.0.0.1:{stack.mlflow_port}\n" in stack_env
            assert f"redis://127.0.0.1:{stack.redis_port + 1}/0\n" in stack_env
            # gRPC is on in make up: its health service says SERVING once /readyz is ready.
            assert f"MODELGATE_GRPC_PORT={stack.grpc_port}\n" in stack_env
            with grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel:
                check = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5
                )
            assert check.status == health_pb2.HealthCheckResponse.SERVING

            dev_key = (checkout_copy / "var" / "dev-api-key").read_text().strip()
            assert dev_key.startswith("mg_")
            assert client.post(f"{stack.url}/predict", json=ROW).status_code == 401
            headers = {"X-API-Key": dev_key}
            response = client.post(f"{stack.url}/predict", json=ROW, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["predictions"] == [0]
            assert len(body["probabilities"]) == 1 and len(body["probabilities"][0]) == 3
            # make up serves every model with the alias production, iris answering /predict.
            ready = client.get(f"{stack.url}/readyz").json()
            assert ready["discovery"]["patterns"] == ["*@production"], ready
            assert ready["default_model"] == "iris" and "iris" in ready["models"]

            # The stack's worker runs batch jobs.
            _run_job(stack, client, headers)

            # A model logged the ordinary MLflow way, then given the alias production, is
            # served with no restart and no command, within three refresh intervals.
            took = _log_the_ordinary_way(stack, client, headers)
            assert took < 3 * MAKE_UP_REFRESH_SECONDS, took
            print(f"an ordinarily logged model was served {took:.1f} s after its alias was set")

            stack.wait_trainer_done()
            assert _registered_versions(checkout_copy) == [1]
            stack.stop()
            # Everything starts at once, MLflow last to listen: the others wait for it quietly
            # (no warning per refused connection) and say once what they wait for.
            assert "Connection refused" not in stack.log.read_text(errors="replace")

            # Second start on the same ports: the registry in var/ is reused, not retrained.
            stack.start()
            stack.wait_ready(client)
            stack.wait_trainer_done()
            # The development key is reused, not replaced.
            assert (checkout_copy / "var" / "dev-api-key").read_text().strip() == dev_key
            response = client.post(f"{stack.url}/predict", json=ROW, headers=headers)
            assert response.status_code == 200, response.text
            assert _registered_versions(checkout_copy) == [1]

            # A crash of the gateway and of the worker: both come back, the rest stays.
            _kill_and_see_restarted(stack, client, ("gateway", "worker"))
            _run_job(stack, client, headers)  # on the restarted worker
            # The trainer ran once per start, and was not run again by the restarts.
            done = "trainer exited with status 0; done, not restarted"
            assert stack.text().count(done) == 2
            assert stack.supervised.states()["trainer"] == "EXITED"
            # var/ is the owner's only: Redis's AOF, MLflow's database and artifacts, the keys.
            var = checkout_copy / "var"
            assert list((var / "redis").rglob("*.aof")), "no AOF file to check"
            assert (var / "mlflow" / "mlflow.db").is_file()
            assert _looser_than_owner_only(var) == []
            stack.interrupt()
    except BaseException:
        print(f"--- make up log, last lines ({stack.log}) ---\n{stack.log_tail()}")
        raise
    finally:
        stack.kill()
