"""Prometheus metrics of the worker (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHUNKS = Counter("modelgate_worker_chunks_total", "Chunks predicted and stored")
ROWS = Counter("modelgate_worker_rows_total", "Rows predicted and stored")
TASK_SECONDS = Histogram(
    "modelgate_worker_task_seconds",
    "Seconds to predict and store one chunk",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CHUNK_FAILURES = Counter(
    "modelgate_worker_chunk_failures_total",
    "Chunks whose job was marked failed, by error code (the stable codes of the code base)",
    ["code"],
)
REDELIVERIES = Counter(
    "modelgate_worker_redeliveries_total",
    "Chunk tasks delivered again (a worker died or the visibility timeout passed)",
)
DUPLICATE_CHUNKS = Counter(
    "modelgate_worker_duplicate_chunks_total",
    "Redelivered chunk tasks whose result was already stored (skipped, nothing duplicated)",
)
