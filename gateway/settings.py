"""Settings read only by the gateway."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.dataplane.specs import default_model, explicit_specs, parse_specs
from kernel.settings import SharedSettings


class GatewaySettings(SharedSettings):
    """Everything the gateway reads from MODELGATE_* environment variables."""

    host: str = "127.0.0.1"
    """Interface the gateway listens on."""

    port: int = 8000
    """Port the gateway listens on."""

    models: str = "iris@production"
    """Served models, comma-separated: `name@alias` serves one model, `*@alias` every registered
    model that has that alias (found by a scan of the registry every `refresh_seconds`; a model
    that loses the alias or is deleted then answers 404). An explicit entry wins over a pattern
    for its name; the first pattern whose alias a model carries decides its version."""

    default_model: str | None = None
    """The model that the legacy routes (`/predict`, `/health`, `/model-info`) answer for: a
    name, explicit or found by a pattern. Unset: the first explicit entry of `models`; with only
    patterns and no default, those routes answer 404 `model_not_found` saying to set this."""

    max_served_models: int = Field(default=100, ge=1)
    """Most models served at once (explicit entries first, then those found by patterns, in
    name order); the others are logged, listed in /readyz and answer 503 `model_unavailable`."""

    refresh_seconds: float = Field(default=10.0, gt=0)
    """How often aliases are re-resolved, so a promotion is served within this delay."""

    model_load_retry_seconds: float = Field(default=2.0, gt=0)
    """Delay between load attempts while a configured model is not loaded yet."""

    version_cache_size: int = Field(default=4, ge=0)
    """Versions kept in memory besides the one each served alias points to (at most
    `max_served_models` of those): previous versions (fast rollback), pinned versions, other
    aliases, versions judged for the CLI; the least recently used is dropped first. So at most
    `max_served_models + version_cache_size` versions are loaded. 0: no pinned versions (404)."""

    registry_calls_per_owner: int = Field(default=2, ge=1)
    """Registry lookups (a pinned version or an alias not in memory) one owner's requests may
    have in flight at once; past it, 503 `overloaded` at once, so that one owner flooding
    unknown versions or aliases cannot starve the others. Unknown ones are remembered for
    `refresh_seconds` besides."""

    max_sync_rows: int = Field(default=1000, ge=1)
    """Most rows one synchronous prediction may carry; more belong in a batch job."""

    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Largest request body, enforced while it streams in."""

    max_job_line_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Longest line of a CSV or NDJSON job upload, its line ending not counted (a CSV record
    whose quoted cell spans lines counts them all), and longest row of a JSON one (an instance,
    a record, an `ids` entry; any one value): past it, 413 `body_too_large` naming this limit,
    as soon as that much has been read. A line is never held whole past it, so it bounds what
    one upload costs the gateway's memory besides its chunk."""

    max_job_id_bytes: int = Field(default=1024, ge=16)
    """Longest id value in a job upload, in UTF-8 bytes, in every format (a CSV id cell, an
    NDJSON or JSON id column's text, an entry of `ids`): past it, 422 `invalid_input` naming
    this limit."""

    max_job_cell_bytes: int = Field(default=4096, ge=16, le=128 * 1024)
    """Longest value of a feature in a job upload, in UTF-8 bytes: a CSV cell, a JSON or NDJSON
    string. Past it, 422 `invalid_input` naming this limit. At most 128 KiB (Python's csv module
    reads no longer field)."""

    predict_threads: int = Field(default=2, ge=1)
    """Threads that run model calls, off the event loop (model calls running at once)."""

    max_pending_predictions: int = Field(default=1024, ge=1)
    """Requests queued for or in a model call at once; past this, 503 with Retry-After."""

    batch_max_rows: int = Field(default=512, ge=1)
    """Most rows the coalescer combines into one model call (a larger request goes alone)."""

    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    """How long a request may wait for others to share its model call while a thread is free;
    0 calls at once (requests still combine while every thread is busy)."""

    cache_mode: Literal["on", "off", "native", "sklearn"] = "native"
    """Prediction cache use: `on`, `off`, or `native` (only for versions served by their native
    library, since a cache round trip costs more than an onnxruntime call; see bench/;
    `sklearn` is its old name)."""

    cache_ttl_seconds: int = Field(default=3600, ge=1)
    """How long a cached prediction is kept."""

    cache_timeout_seconds: float = Field(default=0.05, gt=0)
    """Longest wait for the cache Redis; past it the rows are predicted (never an error)."""

    local_cache_size: int = Field(default=10_000, ge=0)
    """Predictions kept in the process in front of the cache Redis (0: Redis only)."""

    log_level: str = "INFO"
    """Level of the JSON logs on stdout."""

    enable_docs: bool = False
    """Serve /docs and /openapi.json (public when on)."""

    keys_refresh_seconds: float = Field(default=2.0, gt=0)
    """How often the snapshot of API keys is re-read: the delay of a new or revoked key."""

    bootstrap_admin_key_sha256: str | None = None
    """SHA-256 (hex) of an admin key accepted without being in Redis, for a fresh deployment."""

    bootstrap_admin_owner: str = "admin"
    """Owner (tenant) name of the bootstrap admin key."""

    predict_limit: str = "1200/minute"
    """Default limit of prediction requests per key (a key may carry its own)."""

    jobs_limit: str = "120/hour"
    """Default limit of batch-job submissions per key."""

    reads_limit: str = "6000/minute"
    """Default limit of reads per key (model listings, job polling and results)."""

    rate_limit_fail_open: bool = True
    """When the rate-limit Redis is unreachable: admit (true) or answer 503 (false)."""

    auth_failure_limit: str = "20/minute"
    """Failed authentications (missing or unknown key) allowed per client address, counted in
    the durable Redis across gateways; past it a failure is answered 429 with Retry-After. A
    valid key is never refused by it. With that Redis down, each gateway counts on its own."""

    trusted_proxies: str = ""
    """Comma-separated addresses or networks (`10.0.0.0/8`) of proxies whose `X-Forwarded-For`
    names the client (the right-most address not in this list); empty: none, the header is
    ignored and the peer is the client. Set to nginx's address in compose and Kubernetes."""

    max_header_line_bytes: int = Field(default=8 * 1024, ge=1024)
    """Longest header line (name and value) and request target; past it, 431 (414 for the
    target) before the request reaches the app."""

    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    """Largest header block of a request, all lines together; past it, 431."""

    max_headers: int = Field(default=100, ge=10)
    """Most header lines in a request; past it, 431."""

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest time from a connection's accept (or a kept-alive request's first byte) to the
    end of its headers; past it, 408 and the connection is closed (a slowloris is cut here)."""

    keep_alive_seconds: int = Field(default=5, ge=1)
    """How long an idle kept-alive connection stays open between requests."""

    max_connections: int = Field(default=2048, ge=1)
    """Open HTTP connections per gateway process; a request on a connection past it is answered
    503 `overloaded` with Retry-After and `Connection: close`, without reaching the app."""

    cors_origins: str = ""
    """Comma-separated origins allowed by CORS; empty turns CORS off."""

    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the Open Inference Protocol V2 over gRPC (`inference.GRPCInferenceService`, with
    the `grpc.health.v1` health service), served by the same process and event loop as HTTP,
    with the same keys, limits and data plane; off if unset."""

    grpc_host: str | None = None
    """Interface the gRPC port listens on; unset: `host`."""

    metrics_port: int | None = None
    """Port of the Prometheus metrics server (never exposed by nginx or Ingress); off if unset."""

    drain_seconds: float = Field(default=5.0, ge=0)
    """After SIGTERM/SIGINT: how long /readyz answers 503 while requests are still served, so
    load balancers stop sending before the port closes (0: close at once)."""

    graceful_shutdown_seconds: int = Field(default=10, ge=0)
    """After the drain: longest wait for in-flight requests before they are cancelled."""

    dependency_check_seconds: float = Field(default=10.0, gt=0)
    """How often Redis, the cache and the registry are checked for the
    `modelgate_dependency_up` gauge (and models for `modelgate_model_ready`)."""

    csv_neutralise_formulas: bool = True
    """CSV job results: a text cell (an id, a column name, a text label) that starts with `=`,
    `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so that a spreadsheet shows it
    as text instead of running it as a formula (OWASP's CSV injection advice); numbers, and text
    that is a number such as `-5` or `+1`, are left alone. Off: cells are written as they are."""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        from gateway.http.addresses import parse_trusted

        parse_trusted(value)  # raises ValueError naming the bad address
        return value

    @field_validator("predict_limit", "jobs_limit", "reads_limit", "auth_failure_limit")
    @classmethod
    def _limit_parses(cls, value: str) -> str:
        from gateway.guard.keys import parse_one_limit

        parse_one_limit(value)  # raises ValueError on anything but one "N/period"
        return value

    @field_validator("bootstrap_admin_key_sha256")
    @classmethod
    def _is_sha256(cls, value: str | None) -> str | None:
        if value and (len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value)):
            raise ValueError("must be the 64 hex digits of a SHA-256")
        return value or None

    @property
    def default_limits(self) -> dict[str, str]:
        return {"predict": self.predict_limit, "jobs": self.jobs_limit, "reads": self.reads_limit}

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @field_validator("models")
    @classmethod
    def _models_parse(cls, value: str) -> str:
        parse_specs(value)  # raises ValueError with the reason
        return value

    @field_validator("default_model")
    @classmethod
    def _default_is_a_name(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if "@" in value or "*" in value or "," in value:
            raise ValueError("must be a model name, without alias or pattern")
        return value or None

    @model_validator(mode="after")
    def _models_fit(self) -> GatewaySettings:
        specs = parse_specs(self.models)
        named = [spec.name for spec in explicit_specs(specs)]
        if len(named) > self.max_served_models:
            raise ValueError(f"{len(named)} models configured, max_served_models is lower")
        default = default_model(specs, self.default_model)
        if default is not None and default not in named and len(named) == len(specs):
            raise ValueError(f"default_model '{default}' is not among the served models")
        return self
