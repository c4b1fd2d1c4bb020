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
