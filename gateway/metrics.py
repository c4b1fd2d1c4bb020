"""Prometheus metrics of the gateway (bounded labels only), served on their own port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RATE_LIMITED = Counter(
    "modelgate_rate_limited_total", "Requests refused with 429, by kind of route", ["kind"]
)
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "modelgate_rate_limit_storage_errors_total",
    "Rate-limit checks that could not reach Redis, by kind and outcome (open: admitted)",
    ["kind", "outcome"],
)
AUTH_FAILURES = Counter(
    "modelgate_auth_failures_total", "Requests refused by authentication", ["status"]
)
CONNECTIONS_REFUSED = Counter(
    "modelgate_connections_refused_total",
    "Requests refused by the connection limits before the app (headers, header time, connections)",
    ["reason"],
)
REGISTRY_BUDGET_REFUSED = Counter(
    "modelgate_registry_budget_refused_total",
    "Requests answered 503 because their owner had every registry lookup slot in flight",
)
AUTH_THROTTLED = Counter(
    "modelgate_auth_throttled_total",
    "Failed authentications answered 429: their client address was over the failure limit",
)

# -- the sync fast path: prediction cache and coalescing ---------------------------------------
CACHE_HITS = Counter(
    "modelgate_cache_hits_total", "Rows answered from the prediction cache, by layer", ["layer"]
)
CACHE_MISSES = Counter("modelgate_cache_misses_total", "Rows looked up and not in the cache")
CACHE_ERRORS = Counter(
    "modelgate_cache_errors_total", "Cache reads or writes that failed or timed out", ["op"]
)
BATCH_ROWS = Histogram(
    "modelgate_batch_rows",
    "Rows per model call of the sync path (coalesced requests)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BATCH_REQUESTS = Histogram(
    "modelgate_batch_requests",
    "Requests coalesced into one model call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
MODEL_CALL_SECONDS = Histogram(
    "modelgate_model_call_seconds",
    "Seconds of one model call on the sync path, by runtime",
    ["runtime"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
OVERLOADED = Counter(
    "modelgate_overloaded_total", "Predictions refused with 503 because the queue was full"
)

# -- every request, counted by the request middleware ------------------------------------------
HTTP_REQUESTS = Counter(
    "modelgate_http_requests_total",
    "Requests answered, by route template (`other`: no route matched), method and status",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "modelgate_http_request_seconds",
    "Seconds from a request's arrival to the end of its response, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GRPC_REQUESTS = Counter(
    "modelgate_grpc_requests_total",
    "gRPC calls answered (MODELGATE_GRPC_PORT), by method of the V2 service and status code",
    ["method", "code"],
)
GRPC_REQUEST_SECONDS = Histogram(
    "modelgate_grpc_request_seconds",
    "Seconds from a gRPC call's arrival to its answer, by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# -- what this gateway serves and can reach ---------------------------------------------------
MODEL_VERSION = Gauge(
    "modelgate_model_version", "Version served for a configured model's alias", ["model"]
)
MODEL_READY = Gauge(
    "modelgate_model_ready", "1 when a configured model is loaded and served, else 0", ["model"]
)
DEPENDENCY_UP = Gauge(
    "modelgate_dependency_up",
    "1 when the last check reached the dependency (redis, cache, registry), else 0",
    ["dependency"],
)
MODEL_LOAD_FAILURES = Gauge(
    "modelgate_model_load_failures",
    "1 when the version a served model's alias points to was refused for a lasting reason "
    "(digest, format, trusted types...): it answers 503 model_unavailable, or an older "
    "version serves; else 0",
    ["model"],
)
MODELS_OVER_CAP = Gauge(
    "modelgate_models_over_cap",
    "Models found by a pattern but not served: past MODELGATE_MAX_SERVED_MODELS",
)

# -- memory: every version in memory (served, previous, pinned), bounded by the settings ------
LOADED_VERSIONS = Gauge(
    "modelgate_loaded_versions", "Versions of a model loaded in this gateway", ["model"]
)
LOADED_MODEL_BYTES = Gauge(
    "modelgate_loaded_model_bytes",
    "Approximate memory of a loaded version: the size of its artifact on disk",
    ["model", "version"],
)
