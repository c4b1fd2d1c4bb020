"""Prometheus metrics of the gateway (bounded labels only), served on their own port."""

from __future__ import annotations

from prometheus_client import Counter

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
