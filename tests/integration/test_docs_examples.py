"""Every ```sh and ```python example of README.md and docs/ runs against a live stack.

The stack is this module's own (two redis-servers, an MLflow server, the trained demo model, a
gateway and a worker), not the session's: the examples promote and roll back `iris@production`
and register models, which the other integration tests must never see. Each page runs in its
own directory laid out like a checkout after `make up`: `var/stack.env` with the stack's
addresses, `var/dev-api-key` holding a key with every scope, `var/mlflow/mlflow.db` (the
registry's database, for the backup example) and `.venv` (this venv). A page's blocks run in
order as one bash script under `set -euo pipefail`, python blocks through the venv's
interpreter, so that the examples are exactly what a user types from the checkout's root.
curl is told to fail on an HTTP error (`fail-with-body` in a curlrc), so an example that gets
an error answer fails. Blocks marked `<!-- docs-test: skip (reason) -->` are not run
(tests/docblocks.py; tests/unit/test_docs_blocks.py checks the markers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import clients_venv
from devstack.processes import (
    Gateway,
    MlflowServer,
    RedisServer,
    Service,
    Worker,
    free_port,
    stop_all,
)
from tests.docblocks import ROOT, failed_block, page_blocks, page_script, pages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

VENV = Path(sys.executable).parent.parent
#: Longest a page's examples may take (each `modelgate train` or `import` takes a while).
PAGE_TIMEOUT_SECONDS = 600
#: Gateway settings of the docs stack beyond make up's: quick refreshes, so that an example
#: that promotes or creates a key sees it take effect within its own `sleep`, and room for the
#: jobs the pages submit at once.
GATEWAY_SETTINGS = {
    # What make up serves: every model with the alias production, /predict answering for iris.
    "MODELGATE_MODELS": "*@production",
    "MODELGATE_DEFAULT_MODEL": "iris",
    "MODELGATE_REFRESH_SECONDS": "0.5",
    "MODELGATE_KEYS_REFRESH_SECONDS": "0.5",
    "MODELGATE_MODEL_LOAD_RETRY_SECONDS": "0.5",
    "MODELGATE_DRAIN_SECONDS": "0",
    "MODELGATE_MAX_RUNNING_JOBS_PER_OWNER": "20",
}

RUNNABLE = [path for path in pages() if any(b.runs for b in page_blocks(path)[0])]


@dataclass
class DocsStack:
    """The live stack and the `var/` directory that a checkout would have after `make up`."""

    var: Path
    env: dict[str, str]

    def checkout(self, where: Path) -> Path:
        """A directory laid out like the checkout's root, sharing this stack's `var/`."""
        where.mkdir(parents=True)
        (where / "var").symlink_to(self.var, target_is_directory=True)
        (where / ".venv").symlink_to(VENV, target_is_directory=True)
        return where


def _environment(home: Path) -> dict[str, str]:
    """The user's shell: no MODELGATE_* of the developer, the venv first on PATH, a curlrc."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".curlrc").write_text("fail-with-body\nshow-error\n")
    # No MODELGATE_* of the developer, and no MLFLOW_* either: mlflow.set_tracking_uri in a
    # test of this process exports MLFLOW_TRACKING_URI, which would point an example elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "MLFLOW_"))}
    env.pop("XDG_CONFIG_HOME", None)  # the user config is looked up there first
    env.update(
        HOME=str(home),
        CURL_HOME=str(home),
        PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def docs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsStack]:
    base = tmp_path_factory.mktemp("docs-stack")
    var = base / "var"
    services: list[Service] = []
    durable, cache = RedisServer(var / "redis", "durable"), RedisServer(base / "cache", "cache")
    mlflow = MlflowServer(var / "mlflow")  # var/mlflow/mlflow.db and artifacts/, as make up's
    try:
        for service in (durable, cache, mlflow):
            services.append(service)
            service.start()
        stack = {
            "MODELGATE_MLFLOW_TRACKING_URI": mlflow.url,
            "MODELGATE_REDIS_URL": durable.url,
            "MODELGATE_CACHE_URL": cache.url,
        }
        grpc_port = {"MODELGATE_GRPC_PORT": str(free_port())}  # make up serves gRPC too
        gateway = Gateway(base / "services", {**stack, **GATEWAY_SETTINGS, **grpc_port})
        stack_env = {
            **stack,
            "MODELGATE_PORT": str(gateway.port),
            **grpc_port,
            "MODELGATE_GATEWAY_URL": gateway.url,
        }
        (var / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in stack_env.items()))
        env = _environment(base / "home")
        # What make up's trainer process does (Procfile), from the checkout's root.
        modelgate = str(VENV / "bin" / "modelgate")
        _run([modelgate, "keys", "dev", "--file", "var/dev-api-key"], base, env)
        _run([modelgate, "train", "--if-missing"], base, env)
        # `make clients-venv`: the venv of tritonclient and KServe's client (docs/protocols/).
        clients_venv.ensure()
        (var / "clients-venv").symlink_to(clients_venv.VENV, target_is_directory=True)
        services.append(gateway)
        gateway.start()
        worker = Worker(base / "services", stack)
        services.append(worker)
        worker.start()
        yield DocsStack(var, env)
    finally:
        stop_all(services)


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.relative_to(ROOT).as_posix() for p in RUNNABLE])
def test_page_examples_run(path: Path, docs_stack: DocsStack, tmp_path: Path) -> None:
    blocks, problems = page_blocks(path)
    assert not problems, "\n".join(problems)
    workdir = docs_stack.checkout(tmp_path / "checkout")
    script = workdir.parent / "page.sh"
    script.write_text(page_script(blocks))
    try:
        done = subprocess.run(
            ["bash", str(script)],
            cwd=workdir,
            env=docs_stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=PAGE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
        pytest.fail(f"{failed_block(output)} did not end in {PAGE_TIMEOUT_SECONDS} s:\n{output}")
    (workdir.parent / "page.log").write_text(done.stdout)  # kept with pytest's tmp dirs
    if done.returncode != 0:
        pytest.fail(
            f"{failed_block(done.stdout)} failed (exit {done.returncode}):\n{done.stdout[-8000:]}"
        )
