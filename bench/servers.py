"""One server measured with wrk at every concurrency: warm-up, runs, cache counters, memory.

Shared by the main comparison (bench/__main__.py) and the flavor section (bench/flavors.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.wrk import Load, run_wrk
from devstack.processes import Gateway, Service

#: Row numbers (bench/rows.lua) are spaced so that no run, warm-up included, repeats a row of
#: another: a cache-miss case must see misses only (checked in the report).
ROWS_PER_RUN = 1_000_000
WARMUP_OFFSET = 5_000_000_000


@dataclass
class Target:
    """One server measured at every concurrency."""

    name: str
    label: str
    body_format: str
    repeat: int = 0
    width: int = 4  # features a row has (4: iris; else bench/rows.lua's wide rows)
    loads: list[Load] = field(default_factory=list)
    cache: list[dict[str, float]] = field(default_factory=list)
    rss_mb: float | None = None
    rss_ready_mb: float | None = None


def measure_target(
    target: Target,
    service: Service,
    url: str,
    *,
    api_key: str,
    connections: list[int],
    seconds: float,
    warmup: float,
    offset: int,
) -> int:
    """Warm `service` up, then one wrk run per concurrency into `target`; returns the row
    offset after the last run (the next target's first). The service is left running."""
    target.rss_ready_mb = rss_mb(service)  # loaded, before any traffic
    key = api_key if isinstance(service, Gateway) else ""  # only Modelgate takes keys
    # Warm-up on rows the measured runs never send.
    run_wrk(
        url,
        connections=16,
        seconds=warmup,
        body_format=target.body_format,
        api_key=key,
        repeat=target.repeat,
        offset=WARMUP_OFFSET + offset,
        width=target.width,
    )
    for conns in connections:
        before = cache_counts(service)
        offset += ROWS_PER_RUN
        load = run_wrk(
            url,
            connections=conns,
            seconds=seconds,
            body_format=target.body_format,
            api_key=key,
            repeat=target.repeat,
            offset=0 if target.repeat else offset,
            width=target.width,
        )
        after = cache_counts(service)
        target.loads.append(load)
        target.cache.append({k: after[k] - before.get(k, 0) for k in after})
        print(
            f"  {target.name:<16} c={conns:<3} {load.rps:>8.1f} req/s  "
            f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:8.2f} ms  "
            f"errors {load.errors}"
        )
    target.rss_mb = rss_mb(service)
    return offset


def cache_counts(service: Service) -> dict[str, float]:
    """Modelgate's own hit and miss counters, read from its metrics port."""
    if not isinstance(service, Gateway):
        return {}
    port = service.env["MODELGATE_METRICS_PORT"] if service.env else None
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    hits = sum(
        float(m.group(1))
        for m in re.finditer(r"^modelgate_cache_hits_total\{[^}]*\} (\S+)$", text, re.M)
    )
    miss = re.search(r"^modelgate_cache_misses_total (\S+)$", text, re.M)
    return {"hits": hits, "misses": float(miss.group(1)) if miss else 0.0}


def rss_mb(service: Service) -> float | None:
    """Resident memory of the server process (VmRSS), in MiB."""
    try:
        status = Path(f"/proc/{service.pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return round(int(found.group(1)) / 1024, 1) if found else None
