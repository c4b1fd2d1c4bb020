"""The peer row of the protocol section (bench/protocols.py): Seldon MLServer 1.7.1 with
mlserver-sklearn, serving the bench's demo forest over V2 JSON, in a venv of its own.

The venv, `var/bench-mlserver-venv`, is built from requirements.lock beside this file and
rebuilt only when the lock's SHA-256 changes (MLServer 1.7.1 needs FastAPI < 0.116 and
protobuf < 7, older than the repo's). The model is the registered version's fitted estimator
exported with joblib as `model.joblib`, which the lock's scikit-learn (the repo's pin) loads.
settings.json and model-settings.json are the templates: `debug` off (no access log), no
tracing, no Kafka, no response cache, metrics on as shipped; each run fills in 127.0.0.1's free
ports (HTTP, gRPC, metrics), the model's path and version, and a setup's inference workers and
adaptive batching (MLSERVER_SETUPS, each measured; the section compares at the best).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib

from bench.servers import Target, measure_target
from bench.stack import MODEL, Stack
from devstack.processes import Service, free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
MLSERVER_FILES = Path(__file__).parent
LOCK = MLSERVER_FILES / "requirements.lock"
VENV = ROOT / "var" / "bench-mlserver-venv"
STAMP = ".bench-lock-sha256"


@dataclass(frozen=True)
class MlserverSetup:
    """One MLServer configuration: inference workers and adaptive batching."""

    name: str
    parallel_workers: int
    max_batch_size: int = 0
    max_batch_time: float = 0.0

    @property
    def label(self) -> str:
        batching = (
            f"batch {self.max_batch_size}/{self.max_batch_time * 1000:g}ms"
            if self.max_batch_size > 1
            else "no batching"
        )
        n = self.parallel_workers
        workers = f"{n} worker{'s' if n > 1 else ''}" if n else "in process"
        return f"MLServer 1.7.1, {workers}, {batching}"


#: MLServer's defaults (one inference worker process, no batching), then adaptive batching with
#: inference in the server process, in one worker and in one worker per core. Batches of up to
#: 64 requests (the connections) within 5 ms: the best of the sizes (16, 64) and waits (2, 5,
#: 10 ms) tried on this machine; without batching, 0 or 2 workers did no better than 1.
MLSERVER_DEFAULTS = "mlserver_w1"
MLSERVER_SETUPS = (
    MlserverSetup(MLSERVER_DEFAULTS, 1),
    MlserverSetup("mlserver_w0_batch", 0, max_batch_size=64, max_batch_time=0.005),
    MlserverSetup("mlserver_w1_batch", 1, max_batch_size=64, max_batch_time=0.005),
    MlserverSetup("mlserver_w2_batch", 2, max_batch_size=64, max_batch_time=0.005),
)


def mlserver_venv(log: Path) -> Path:
    """var/bench-mlserver-venv with the lock installed; reused while the lock is the same."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    stamp = VENV / STAMP
    if (VENV / "bin" / "mlserver").exists() and stamp.exists() and stamp.read_text() == digest:
        return VENV
    print(f"  protocols: building {VENV.relative_to(ROOT)} from {LOCK.relative_to(ROOT)}")
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for argv in (
            [sys.executable, "-m", "venv", str(VENV)],
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(LOCK)],
        ):
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-5:]
                raise RuntimeError(f"{' '.join(argv[:4])} failed: " + " | ".join(tail))
    stamp.write_text(digest)
    return VENV


def start_mlserver(stack: Stack, venv: Path, setup: MlserverSetup) -> tuple[Service, str]:
    """`mlserver start` of a folder with the templates filled in for `setup`."""
    assert stack.model is not None
    folder = stack.workdir / "mlserver" / setup.name
    folder.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = json.loads((MLSERVER_FILES / "settings.json").read_text())
    settings |= {
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": setup.parallel_workers,
        "metrics_dir": str(folder / ".metrics"),
        "environments_dir": str(folder / ".envs"),
    }
    model = json.loads((MLSERVER_FILES / "model-settings.json").read_text())
    model |= {"max_batch_size": setup.max_batch_size, "max_batch_time": setup.max_batch_time}
    model["parameters"] |= {
        "uri": str(stack.workdir / "mlserver" / "model.joblib"),
        "version": str(stack.model.version),
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLSERVER_", "MODELGATE_", "OTEL_", "PYTHON"))
    }
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "OTEL_SDK_DISABLED": "true"}
    argv = [str(venv / "bin" / "mlserver"), "start", str(folder)]
    service = Service("mlserver", argv, folder / "mlserver.log", env, cwd=folder)
    service.start()
    url = f"http://127.0.0.1:{http_port}"

    def ready() -> bool:
        if service.proc is None or service.proc.poll() is not None:
            raise TimeoutError("MLServer exited")
        if b"failed to load" in service.log_path.read_bytes():
            raise TimeoutError("MLServer failed to load the model")
        return http_ok(f"{url}/v2/models/{MODEL}/ready")

    try:
        wait_until(ready, 180, "MLServer", interval=0.3)
    except TimeoutError as exc:
        tail = service.log_tail(8)
        service.stop()
        raise TimeoutError(f"{exc}; its log ends:\n{tail}") from exc
    return service, f"{url}/v2/models/{MODEL}/infer"


def measure_mlserver(
    stack: Stack,
    section: dict[str, Any],
    timing: dict[str, float],
    offset: int,
    probe: Any,
    connections: int,
) -> int:
    """Each setup in turn, into `section`: its targets, settings, errors and the best setup;
    `probe` (a V2 body of a row no run sends) is answered once by each. Returns the row
    offset after its runs."""
    assert stack.model is not None
    entry: dict[str, Any] = {
        "lock_sha256": hashlib.sha256(LOCK.read_bytes()).hexdigest(),
        "venv": str(VENV.relative_to(ROOT)),
        "settings_template": json.loads((MLSERVER_FILES / "settings.json").read_text()),
        "model_settings_template": json.loads((MLSERVER_FILES / "model-settings.json").read_text()),
        "setups": {s.name: asdict(s) | {"label": s.label} for s in MLSERVER_SETUPS},
        "best": None,
    }
    section["mlserver"] = entry
    (stack.workdir / "mlserver").mkdir(parents=True, exist_ok=True)
    try:
        venv = mlserver_venv(stack.workdir / "mlserver" / "venv.log")
    except RuntimeError as exc:
        section["errors"]["mlserver"] = str(exc)
        print(f"  protocols: no MLServer venv: {exc}")
        return offset
    versions = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
    )
    wanted = {"mlserver", "mlserver-sklearn", "scikit-learn", "fastapi", "uvicorn", "numpy"}
    entry["versions"] = {
        p["name"].lower(): p["version"]
        for p in json.loads(versions.stdout or "[]")
        if p["name"].lower() in wanted
    }
    # The registered version's fitted estimator, as the seed app's model.pkl is.
    joblib.dump(stack.model.estimator, stack.workdir / "mlserver" / "model.joblib")
    for setup in MLSERVER_SETUPS:
        try:
            service, url = start_mlserver(stack, venv, setup)
        except TimeoutError as exc:
            section["errors"][setup.name] = str(exc)
            print(f"  {setup.name:<16} not measured: {exc}")
            continue
        try:
            answer = httpx.post(url, json=probe, timeout=30)
            entry["setups"][setup.name]["probe"] = {
                "status": answer.status_code,
                "body": answer.text[:400],
            }
            target = Target(setup.name, setup.label, "v2")
            offset = measure_target(
                target, service, url, api_key="", connections=[connections], offset=offset, **timing
            )
        finally:
            service.stop()
        section["targets"][setup.name] = asdict(target)
    measured = [s.name for s in MLSERVER_SETUPS if s.name in section["targets"]]
    if measured:
        entry["best"] = max(measured, key=lambda name: section["targets"][name]["loads"][0]["rps"])
    return offset
