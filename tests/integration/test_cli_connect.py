"""Where the `modelgate` CLI connects, run as a user runs it: a process, from some directory.

The order (cli/endpoints.py): a flag, the environment, var/stack.env found from the working
directory upwards (with var/dev-api-key), the user's ~/.config/modelgate/config, the default.
Every run here has a HOME of its own and no MODELGATE_* variable unless the test sets one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import Gateway, RedisServer
from tests.integration.conftest import KEY_PREFIX, known, make_key

VENV_BIN = Path(sys.executable).parent


def run(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "XDG_"))}
    # One try per registry request: a dead MLflow is the point of some runs here.
    clean.update(HOME=str(home), MODELGATE_REGISTRY_MAX_RETRIES="0", **env)
    return subprocess.run(
        [str(VENV_BIN / "modelgate"), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def user_config(tmp_path: Path, gateway: Gateway, redis_durable: RedisServer) -> Path:
    """A HOME whose ~/.config/modelgate/config points at the test stack; returns HOME."""
    home = tmp_path / "home"
    config = home / ".config" / "modelgate" / "config"
    config.parent.mkdir(parents=True)
    key = make_key(redis_durable.url, owner="cli-config")
    known(gateway, key)
    config.write_text(
        f"# written by the test\nMODELGATE_GATEWAY_URL={gateway.url}\n"
        f"MODELGATE_API_KEY={key}\n"
        f"MODELGATE_REDIS_URL={redis_durable.url}\nMODELGATE_KEY_PREFIX={KEY_PREFIX}\n"
    )
    return home


def test_keys_and_jobs_list_run_from_outside_the_checkout(
    tmp_path: Path, user_config: Path
) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    keys = run(elsewhere, user_config, "keys", "list")
    assert keys.returncode == 0, keys.stderr
    header, *rows = keys.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "OWNER", "SCOPES", "PREDICT", "JOBS", "READS", "STATE"]
    assert any(row.split()[2] == "cli-config" for row in rows)
    jobs = run(elsewhere, user_config, "jobs", "list")
    assert jobs.returncode == 0, jobs.stderr
    assert jobs.stdout.split()[:5] == ["JOB", "STATUS", "MODEL", "VERSION", "ROWS"]


def test_stack_env_is_found_from_a_subdirectory_and_wins_over_the_user_config(
    tmp_path: Path, user_config: Path, gateway: Gateway, redis_durable: RedisServer
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "var").mkdir(parents=True)
    (checkout / "var" / "stack.env").write_text(f"MODELGATE_GATEWAY_URL={gateway.url}\n")
    key = make_key(redis_durable.url, owner="from-dev-key")
    (checkout / "var" / "dev-api-key").write_text(key + "\n")
    known(gateway, key)
    below = checkout / "a" / "b"
    below.mkdir(parents=True)
    # The user config names a dead gateway: the checkout's files must win over it.
    config = user_config / ".config" / "modelgate" / "config"
    config.write_text(config.read_text().replace(gateway.url, f"http://127.0.0.1:{closed_port()}"))
    listed = run(below, user_config, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr


def test_connection_errors_name_the_address_and_where_it_came_from(
    tmp_path: Path, user_config: Path
) -> None:
    port = closed_port()
    dead = f"http://127.0.0.1:{port}"
    config = user_config / ".config" / "modelgate" / "config"
    flagged = run(tmp_path, user_config, "jobs", "--gateway-url", dead, "list")
    assert flagged.returncode == 1 and "Traceback" not in flagged.stderr
    assert dead in flagged.stderr and "--gateway-url" in flagged.stderr
    from_env = run(tmp_path, user_config, "jobs", "list", MODELGATE_GATEWAY_URL=dead)
    assert dead in from_env.stderr and "$MODELGATE_GATEWAY_URL" in from_env.stderr
    config.write_text(
        f"MODELGATE_REDIS_URL=redis://:secret@127.0.0.1:{port}/0\n"
        f"MODELGATE_MLFLOW_TRACKING_URI={dead}\n"
    )
    keys = run(tmp_path, user_config, "keys", "list")
    assert keys.returncode == 1 and "Traceback" not in keys.stderr
    assert f"127.0.0.1:{port}" in keys.stderr and str(config) in keys.stderr
    assert "secret" not in keys.stderr
    models = run(tmp_path, user_config, "models")
    assert models.returncode == 1 and "Traceback" not in models.stderr
    assert dead in models.stderr and str(config) in models.stderr
    # Nothing anywhere: the defaults, named as such.
    config.unlink()
    default = run(tmp_path, user_config, "--tracking-uri", dead, "versions", "iris")
    assert "--tracking-uri" in default.stderr
