"""`python -m registry.server`: the `mlflow server` command and environment built from the
MODELGATE_MLFLOW_* settings, and what MLflow's own CLI makes of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from mlflow.cli import server as mlflow_server_command

from registry import server
from registry.server import MlflowServerSettings, server_argv, server_env

ROOT = Path(__file__).resolve().parents[3]
POSTGRES = "postgresql://mlflow:s3cret@postgres:5432/mlflow"
NAMES = sorted(f"MODELGATE_{name.upper()}" for name in MlflowServerSettings.model_fields)


def _settings(**values: Any) -> MlflowServerSettings:
    values.setdefault("mlflow_backend_store_uri", POSTGRES)
    values.setdefault("mlflow_artifacts_destination", "/var/lib/mlflow/artifacts")
    return MlflowServerSettings(**values)


@pytest.fixture(autouse=True)
def _no_settings_from_this_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_argv_serves_proxied_artifacts_with_the_settings() -> None:
    argv = server_argv(_settings(mlflow_host="0.0.0.0", mlflow_port=5001), python="/py")
    assert argv == [
        "/py",
        "-m",
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "5001",
        "--workers",
        "2",
        "--serve-artifacts",
        "--artifacts-destination",
        "/var/lib/mlflow/artifacts",
    ]


def test_the_backend_store_uri_travels_in_the_environment_not_the_command_line() -> None:
    settings = _settings()
    assert not any("s3cret" in arg for arg in server_argv(settings))
    env = server_env(settings, {"PATH": "/usr/bin"})
    assert env["MLFLOW_BACKEND_STORE_URI"] == POSTGRES
    assert env["PATH"] == "/usr/bin"


def test_allowed_hosts_are_passed_only_when_set() -> None:
    assert "--allowed-hosts" not in server_argv(_settings())
    argv = server_argv(_settings(mlflow_allowed_hosts="mlflow:5000,localhost:*"))
    assert argv[argv.index("--allowed-hosts") + 1] == "mlflow:5000,localhost:*"


def test_job_execution_is_off_unless_the_environment_turns_it_on() -> None:
    assert server_env(_settings(), {})["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    env = server_env(_settings(), {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_settings_come_from_modelgate_mlflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_MLFLOW_HOST", "0.0.0.0")
    monkeypatch.setenv("MODELGATE_MLFLOW_PORT", "5002")
    monkeypatch.setenv("MODELGATE_MLFLOW_BACKEND_STORE_URI", "sqlite:////tmp/mlflow.db")
    monkeypatch.setenv("MODELGATE_MLFLOW_ARTIFACTS_DESTINATION", "/tmp/artifacts")
    monkeypatch.setenv("MODELGATE_MLFLOW_WORKERS", "1")
    monkeypatch.setenv("MODELGATE_MLFLOW_ALLOWED_HOSTS", "mlflow:5000")
    settings = MlflowServerSettings()
    assert (settings.mlflow_host, settings.mlflow_port, settings.mlflow_workers) == (
        "0.0.0.0",
        5002,
        1,
    )
    assert settings.mlflow_backend_store_uri == "sqlite:////tmp/mlflow.db"
    assert settings.mlflow_artifacts_destination == "/tmp/artifacts"
    assert settings.mlflow_allowed_hosts == "mlflow:5000"


def test_main_execs_mlflow_with_that_command_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELGATE_MLFLOW_BACKEND_STORE_URI", POSTGRES)
    monkeypatch.setenv("MODELGATE_MLFLOW_ARTIFACTS_DESTINATION", "/data")
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(server.os, "execvpe", lambda *args: calls.append(args))
    server.main()
    ((program, argv, env),) = calls
    assert program == argv[0] and argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--artifacts-destination") + 1] == "/data"
    assert env["MLFLOW_BACKEND_STORE_URI"] == POSTGRES


def test_main_refuses_to_start_without_a_backend_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_MLFLOW_ARTIFACTS_DESTINATION", "/data")
    monkeypatch.setattr(server.os, "execvpe", pytest.fail)
    with pytest.raises(SystemExit) as exited:
        server.main()
    assert "mlflow_backend_store_uri" in str(exited.value.code)


def test_mlflow_cli_accepts_the_command_and_reads_the_backend_store_from_the_environment() -> None:
    """The options exist in the pinned MLflow's `mlflow server`, and it parses them to the
    settings' values (a changed MLflow CLI fails here, not in a container)."""
    settings = _settings(mlflow_allowed_hosts="mlflow:5000")
    argv = server_argv(settings)[4:]
    env = server_env(settings, {})
    context = mlflow_server_command.make_context("server", argv, auto_envvar_prefix=None)
    params = {p.name: p for p in mlflow_server_command.params if isinstance(p, click.Option)}
    assert context.params["host"] == settings.mlflow_host
    assert int(context.params["port"]) == settings.mlflow_port
    assert int(context.params["workers"]) == settings.mlflow_workers
    assert context.params["serve_artifacts"] is True
    assert context.params["artifacts_destination"] == settings.mlflow_artifacts_destination
    assert context.params["allowed_hosts"] == "mlflow:5000"
    store = params["backend_store_uri"]
    assert store.envvar == "MLFLOW_BACKEND_STORE_URI" and store.envvar in env


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_documented(name: str) -> None:
    # The settings page is generated from the class (tests/unit/test_docs_settings.py).
    assert f"#{name}=" in (ROOT / ".env.example").read_text()
