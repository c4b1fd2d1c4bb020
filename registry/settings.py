"""Settings of the registry side: where the MLflow server is and how patiently to talk to it."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

#: `make up` records the addresses it used here, so that the CLI needs no flags.
STACK_ENV_FILE = "var/stack.env"


class RegistrySettings(BaseSettings):
    """Settings read by everything that talks to the MLflow registry."""

    # Services read only their environment; the CLIs add `_env_file=STACK_ENV_FILE`.
    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore")

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    """Address of the MLflow tracking and registry server (artifacts are proxied through it)."""

    registry_timeout_seconds: float = 10.0
    """Timeout of one HTTP request to the MLflow server."""

    registry_max_retries: int = 2
    """Retries of a failed MLflow request (MLflow's own backoff applies between them)."""
