"""Drive wrk against one URL with `bench/rows.lua` and read the JSON its `done()` prints."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("rows.lua")


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    body_format: str,
    api_key: str = "",
    repeat: int = 0,
    offset: int = 0,
    width: int = 4,
) -> Load:
    """One thread, `connections` connections, `seconds` long, rows of `width` features (4: iris
    rows); errors = socket errors, timeouts and non-2xx answers."""
    env = {
        **os.environ,
        "BENCH_FORMAT": body_format,
        "BENCH_API_KEY": api_key,
        "BENCH_REPEAT": str(repeat),
        "BENCH_OFFSET": str(offset),
        "BENCH_WIDTH": str(width),
    }
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    elapsed = raw["duration_us"] / 1e6
    errors = sum(
        raw[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return Load(
        connections=connections,
        requests=raw["requests"],
        seconds=round(elapsed, 2),
        rps=round(raw["requests"] / elapsed, 1),
        p50_ms=raw["p50_ms"],
        p99_ms=raw["p99_ms"],
        errors=errors,
    )
