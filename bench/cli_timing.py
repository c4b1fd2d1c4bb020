"""How long the `modelgate` CLI takes to start, timed as a user runs it (whole processes).

`modelgate --help` (target: under 1 s) and `modelgate keys list` against the bench's durable
Redis (target: under 2 s), each run several times from an empty directory with no config file,
next to a bare `python -c pass` measured in the same run as the floor.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stack import KEY_PREFIX, Stack

#: Seconds each command must start and finish within (median of the runs).
TARGETS = {"help": 1.0, "keys_list": 2.0}


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def measure_cli(stack: Stack, runs: int = 7) -> dict[str, Any]:
    """Median, min and max seconds of each command over `runs` runs (after one warm-up)."""
    assert stack.redis is not None
    bin_dir = Path(sys.executable).parent
    commands = {
        "python_startup": [sys.executable, "-c", "pass"],
        "help": [str(bin_dir / "modelgate"), "--help"],
        "keys_list": [str(bin_dir / "modelgate"), "keys", "list"],
    }
    with tempfile.TemporaryDirectory(prefix="modelgate-bench-cli-") as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env.update(
            HOME=scratch,
            XDG_CONFIG_HOME=str(Path(scratch) / "config"),
            MODELGATE_REDIS_URL=stack.redis.url,
            MODELGATE_KEY_PREFIX=KEY_PREFIX,
        )
        results: dict[str, Any] = {}
        for name, argv in commands.items():
            _timed(argv, env, Path(scratch))  # page cache and .pyc files warm
            seconds = [_timed(argv, env, Path(scratch)) for _ in range(runs)]
            results[name] = {
                "median_s": round(statistics.median(seconds), 3),
                "min_s": round(min(seconds), 3),
                "max_s": round(max(seconds), 3),
                "runs": runs,
            }
            print(
                f"  cli {name:<15} median {results[name]['median_s']:.3f} s "
                f"(min {results[name]['min_s']:.3f}, max {results[name]['max_s']:.3f})"
            )
    floor = results["python_startup"]["median_s"]
    for name in TARGETS:
        results[name]["vs_python_startup"] = round(results[name]["median_s"] / floor, 1)
    return results


def cli_checks(cli: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "target": f"modelgate {name.replace('_', ' ')} < {limit:g} s (median)",
            "met": cli[name]["median_s"] < limit,
            "detail": f"{cli[name]['median_s']:.3f} s, {cli[name]['vs_python_startup']}x "
            "a bare python start",
        }
        for name, limit in TARGETS.items()
        if name in cli
    ]
