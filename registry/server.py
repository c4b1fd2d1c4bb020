"""`python -m registry.server`: the MLflow tracking and registry server, set up from
MODELGATE_MLFLOW_* variables.

The one entrypoint of the server for `make up` (Procfile), the image (docker/mlflow.Dockerfile),
Docker Compose and Kubernetes. Artifacts are always proxied through the server
(`--serve-artifacts`), so gateways, workers and the CLI need only its address.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class MlflowServerSettings(BaseSettings):
    """Everything the MLflow server process reads from MODELGATE_MLFLOW_* variables (its
    clients read `MODELGATE_MLFLOW_TRACKING_URI` instead, see `RegistrySettings`)."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore")

    mlflow_host: str = "127.0.0.1"
    """Interface the MLflow server listens on (0.0.0.0 in a container)."""

    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    """Port the MLflow server listens on."""

    mlflow_backend_store_uri: str
    """Database of runs and registered models, as an SQLAlchemy URL (`sqlite:///...`,
    `postgresql://user:password@host/db`). Required; it may carry a password, so it is handed to
    MLflow in its environment, never on its command line."""

    mlflow_artifacts_destination: str
    """Where the server stores the artifacts it proxies: a directory, or `s3://...` and the like.
    Required."""

    mlflow_workers: int = Field(default=2, ge=1)
    """Worker processes of the server (uvicorn)."""

    mlflow_allowed_hosts: str | None = None
    """Host headers the server answers (its DNS-rebinding protection), comma-separated, `*`
    wildcards allowed; unset: MLFLOW_SERVER_ALLOWED_HOSTS if set, else MLflow's default
    (localhost and private addresses)."""


def server_argv(settings: MlflowServerSettings, python: str = sys.executable) -> list[str]:
    """The `mlflow server` command line for `settings` (the interpreter's own MLflow)."""
    argv = [
        python,
        "-m",
        "mlflow",
        "server",
        "--host",
        settings.mlflow_host,
        "--port",
        str(settings.mlflow_port),
        "--workers",
        str(settings.mlflow_workers),
        "--serve-artifacts",
        "--artifacts-destination",
        settings.mlflow_artifacts_destination,
    ]
    if settings.mlflow_allowed_hosts:
        argv += ["--allowed-hosts", settings.mlflow_allowed_hosts]
    return argv


def server_env(settings: MlflowServerSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: `environ` plus the backend store URI (read by `mlflow server`
    as MLFLOW_BACKEND_STORE_URI, so its password stays out of the process list) and MLflow's
    background job runner off unless asked for (Modelgate runs no MLflow jobs)."""
    env = dict(environ)
    env["MLFLOW_BACKEND_STORE_URI"] = settings.mlflow_backend_store_uri
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def main() -> None:
    try:
        settings = MlflowServerSettings()  # type: ignore[call-arg]  # required ones: from the env
    except ValidationError as exc:
        sys.exit(f"registry.server: invalid MODELGATE_MLFLOW_* settings\n{exc}")
    argv = server_argv(settings)
    # exec: MLflow becomes this process, so signals reach it (it forwards them to its workers).
    os.execvpe(argv[0], argv, server_env(settings, os.environ))


if __name__ == "__main__":
    main()
