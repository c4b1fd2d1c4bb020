"""Settings shared by every Modelgate process: the registry, Redis, jobs, logging, model loading."""

from __future__ import annotations

import sys
from typing import Literal

from pydantic import Field, field_validator
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


class SharedSettings(RegistrySettings):
    """Redis addresses and key prefix, shared by every Modelgate process."""

    redis_url: str = "redis://127.0.0.1:6380/0"
    """Durable Redis: broker, job records, API keys, rate-limit counters (noeviction, AOF)."""

    cache_url: str | None = None
    """Cache Redis for predictions (allkeys-lru, no persistence); the durable one when unset."""

    key_prefix: str = "modelgate:"
    """Prefix of every Redis key, so tests and deployments can share a server."""

    redis_timeout_seconds: float = 0.5
    """Connect and socket timeout of Redis calls; an outage degrades service, never hangs it."""

    chunk_size: int = Field(default=10_000, ge=1)
    """Rows per stored chunk and per Celery task of a batch job."""

    visibility_timeout_seconds: int = Field(default=120, ge=5)
    """Seconds before an unacknowledged task is delivered again; longer than the longest chunk."""

    unacked_restore_interval_seconds: int = Field(default=10, ge=1)
    """How often the broker sweeps for unacknowledged tasks past their visibility timeout."""

    task_time_limit_seconds: int = Field(default=100, ge=1)
    """Hard limit of one chunk task; below the visibility timeout."""

    max_chunk_deliveries: int = Field(default=3, ge=1)
    """Deliveries of one chunk (crashes included) before its job fails."""

    job_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """How long a job, its record, inputs and results, are kept from its submission, unless it
    succeeds first (then `job_results_ttl_seconds` applies from then on)."""

    job_results_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """How long a succeeded job's results (and ids) are kept from when it succeeded; its record
    an hour longer, whose results then answer 410 `job_results_deleted`."""

    max_job_rows: int = Field(default=1_000_000, ge=1)
    """Most rows one batch job may carry."""

    max_job_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    """Largest batch-job upload, enforced while it streams in."""

    max_running_jobs_per_owner: int = Field(default=4, ge=1)
    """Queued or running jobs one owner (tenant) may have at once."""

    max_stored_rows_per_owner: int = Field(default=5_000_000, ge=1)
    """Rows one owner may keep stored across unexpired jobs (inputs and results)."""

    max_stored_bytes_per_owner: int = Field(default=1024 * 1024 * 1024, ge=1024)
    """Bytes one owner may keep stored across unexpired jobs: its inputs, ids and results as
    stored in the durable Redis (orjson), counted as they are stored and freed as they go."""

    runtime: Literal["auto", "native", "sklearn"] = "auto"
    """Model runtime: `auto` serves a version's verified ONNX twin with onnxruntime when it has
    one (`modelgate optimize`), else its native library (scikit-learn, XGBoost, LightGBM,
    CatBoost, pyfunc); `native` always uses the native library (`sklearn` is its old name)."""

    trust: Literal["first-use", "strict"] = "first-use"
    """Artifact integrity. `first-use`: a version without a recorded SHA-256 (logged the
    ordinary MLflow way) gets one recorded by the first gateway or worker that loads it, and
    every later load verifies against it. `strict`: only versions registered by Modelgate or
    vouched for with `modelgate adopt` are served."""

    allow_pickle: bool = False
    """Load pickle and cloudpickle artifacts (they run code when loaded), and then only versions
    registered by Modelgate or vouched for with `modelgate adopt`, never on first use."""

    allow_pyfunc: bool = False
    """Serve models that only have MLflow's `python_function` flavor: they run their author's
    code, in the gateway's own environment (a model's requirements.txt is never installed).
    Like pickle, only versions registered by Modelgate or vouched for with `modelgate adopt`."""

    pyfunc_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest a pyfunc model's predict may take per call before the request fails (504)."""

    trusted_type_prefixes: str = "sklearn.,numpy.,scipy.,xgboost.,lightgbm.,catboost."
    """Modules whose types a skops artifact may ask to trust (comma-separated prefixes); a
    standard-library module is never accepted as a prefix (see `trusted_types`)."""

    trusted_types: str = "collections.OrderedDict"
    """Types a skops artifact may ask to trust by exact name (comma-separated), for the
    standard-library types that LightGBM's skops files ask for."""

    @field_validator("trusted_type_prefixes")
    @classmethod
    def _no_stdlib_prefix(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",") if p.strip()):
            if prefix.split(".")[0] in sys.stdlib_module_names or prefix.split(".")[0] == "":
                raise ValueError(
                    f"'{prefix}' names a standard-library module: trust its types by exact name "
                    "in MODELGATE_TRUSTED_TYPES instead"
                )
        return value

    model_dir: str | None = None
    """Scratch directory for artifact downloads (the system temp directory when unset)."""

    log_file: str | None = None
    """Also write the JSON logs to this file, rotated by size; stdout only when unset."""

    log_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Size at which the log file is rotated (10 MiB, as the hand-written app of
    docs/legacy-api.md)."""

    log_file_backups: int = Field(default=5, ge=1)
    """Rotated log files kept beside the current one (`.1` is the newest)."""

    @property
    def effective_cache_url(self) -> str:
        return self.cache_url or self.redis_url
