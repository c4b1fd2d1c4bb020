"""`python -m bench` (`make bench`): Modelgate against the usual ways to serve the same model.

One run, one machine: every server is started here, measured with wrk at each concurrency, and
stopped before the next starts, so no two compete for the cores. Ratios are against baselines
measured in this same run. Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench.batch import measure
from bench.cli_timing import cli_checks, measure_cli
from bench.stack import Stack
from bench.wrk import Load, run_wrk
from devstack.processes import Gateway, Service, Worker

RESULTS = Path(__file__).with_name("results")
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
    loads: list[Load] = field(default_factory=list)
    cache: list[dict[str, float]] = field(default_factory=list)
    rss_mb: float | None = None
    rss_ready_mb: float | None = None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="wrk duration per run")
    parser.add_argument("--warmup", type=float, default=3, help="wrk warm-up per server")
    parser.add_argument("--connections", default="1,16,64", help="wrk concurrencies")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="0 skips the job")
    parser.add_argument(
        "--only", default="", help="comma-separated target names, `cli` among them (debugging)"
    )
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    stack = Stack(workdir)
    print(f"bench: workdir {workdir}; starting Redis x2, MLflow, training the demo model")
    started = time.time()
    try:
        stack.start()
        targets = measure_servers(stack, connections, args, args.only)
        batch = None
        if args.batch_rows and not args.only:
            batch = measure_batch(stack, workdir, args.batch_rows)
        cli = measure_cli(stack) if not args.only or "cli" in args.only.split(",") else None
    finally:
        stack.close()
    report = build_report(targets, batch, connections, args, time.time() - started)
    report["cli"] = cli
    report["checks"].extend(cli_checks(cli or {}))
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {path}")


def targets_to_run() -> list[tuple[Target, Callable[[Stack], tuple[Service, str]]]]:
    def modelgate(**settings: str) -> Callable[[Stack], tuple[Service, str]]:
        def start(stack: Stack) -> tuple[Service, str]:
            gateway = stack.gateway(**settings)
            return gateway, gateway.url + "/v1/models/iris/predict"

        return start

    return [
        (
            Target("onnx", "Modelgate, ONNX runtime, every row new", "v1"),
            modelgate(runtime="auto", cache_mode="sklearn"),
        ),
        (
            Target("onnx_cache_on", "Modelgate, ONNX, cache on (misses)", "v1"),
            modelgate(runtime="auto", cache_mode="on"),
        ),
        (
            Target("sklearn", "Modelgate, scikit-learn + coalescing", "v1"),
            modelgate(runtime="sklearn", cache_mode="sklearn"),
        ),
        (
            Target("cache_hits", "Modelgate, repeated rows (cache hits)", "v1", repeat=100),
            modelgate(runtime="sklearn", cache_mode="sklearn"),
        ),
        (Target("seed", "hand-written app (joblib, uvicorn x1)", "features"), Stack.seed_app),
        (Target("mlflow", "mlflow models serve", "mlflow"), Stack.mlflow_serve),
        (Target("ceiling", "bare FastAPI + onnxruntime", "features"), Stack.ceiling_app),
    ]


def measure_servers(
    stack: Stack, connections: list[int], args: argparse.Namespace, only: str
) -> list[Target]:
    done: list[Target] = []
    offset = 0
    wanted = {name for name in only.split(",") if name}
    for target, start in targets_to_run():
        if wanted and target.name not in wanted:
            continue
        service, url = start(stack)
        try:
            target.rss_ready_mb = rss_mb(service)  # loaded, before any traffic
            key = stack.api_key if target.body_format == "v1" else ""
            # Warm-up on rows the measured runs never send.
            run_wrk(
                url,
                connections=16,
                seconds=args.warmup,
                body_format=target.body_format,
                api_key=key,
                repeat=target.repeat,
                offset=WARMUP_OFFSET + offset,
            )
            for conns in connections:
                before = cache_counts(service)
                offset += ROWS_PER_RUN
                load = run_wrk(
                    url,
                    connections=conns,
                    seconds=args.seconds,
                    body_format=target.body_format,
                    api_key=key,
                    repeat=target.repeat,
                    offset=0 if target.repeat else offset,
                )
                after = cache_counts(service)
                target.loads.append(load)
                target.cache.append({k: after[k] - before.get(k, 0) for k in after})
                print(
                    f"  {target.name:<14} c={conns:<3} {load.rps:>8.1f} req/s  "
                    f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:8.2f} ms  "
                    f"errors {load.errors}"
                )
            target.rss_mb = rss_mb(service)
        finally:
            service.stop()
        done.append(target)
    return done


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


def measure_batch(stack: Stack, workdir: Path, rows: int) -> dict[str, Any]:
    assert stack.model is not None
    gateway = stack.gateway(runtime="auto")
    settings = {k: v for k, v in (gateway.env or {}).items() if k.startswith("MODELGATE_")}
    settings.pop("MODELGATE_METRICS_PORT", None)
    settings["MODELGATE_WORKER_CONCURRENCY"] = "1"
    worker = Worker(workdir / "worker", settings)
    worker.start()
    try:
        print(f"  batch: {rows:,} rows, one worker process (concurrency 1)")
        result = measure(gateway, stack.model, workdir, rows)
    finally:
        worker.stop()
        gateway.stop()
    print(
        f"  batch: job {result.job_rows_per_s:,} rows/s ({result.job_seconds} s), "
        f"in-process {result.baseline_rows_per_s:,} rows/s ({result.baseline_seconds} s), "
        f"ratio {result.ratio}"
    )
    return result.as_dict()


def build_report(
    targets: list[Target],
    batch: dict[str, Any] | None,
    connections: list[int],
    args: argparse.Namespace,
    seconds: float,
) -> dict[str, Any]:
    by_name = {t.name: t for t in targets}

    def rps(name: str, conns: int) -> float | None:
        target = by_name.get(name)
        if target is None:
            return None
        return next((load.rps for load in target.loads if load.connections == conns), None)

    ratios: dict[str, dict[str, float | None]] = {}
    for target in targets:
        for conns in connections:
            mine = rps(target.name, conns)
            ratios.setdefault(target.name, {})
            for base in ("mlflow", "seed", "ceiling"):
                other = rps(base, conns)
                value = round(mine / other, 2) if mine and other else None
                ratios[target.name][f"vs_{base}_c{conns}"] = value
    return {
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            name: version(name)
            for name in (
                "modelgate",
                "scikit-learn",
                "onnxruntime",
                "skl2onnx",
                "mlflow",
                "fastapi",
                "uvicorn",
                "redis",
                "celery",
            )
        }
        | {"wrk": wrk_version()},
        "settings": {
            "wrk_threads": 1,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "connections": connections,
            "server_processes": 1,
        },
        "targets": {
            t.name: {
                "label": t.label,
                "loads": [load.as_dict() for load in t.loads],
                "cache": t.cache,
                "rss_ready_mb": t.rss_ready_mb,
                "rss_mb": t.rss_mb,
            }
            for t in targets
        },
        "ratios": ratios,
        "batch": batch,
        "checks": targets_met(by_name, batch),
        "elapsed_seconds": round(seconds, 1),
    }


def targets_met(by_name: dict[str, Target], batch: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets, each with the figures it was judged on."""

    def at(name: str, conns: int = 64) -> Load | None:
        target = by_name.get(name)
        return next((x for x in target.loads if x.connections == conns), None) if target else None

    checks: list[dict[str, Any]] = []

    def check(what: str, ok: bool | None, detail: str) -> None:
        checks.append({"target": what, "met": ok, "detail": detail})

    onnx, mlflow, ceiling = at("onnx"), at("mlflow"), at("ceiling")
    sk, hits = at("sklearn"), at("cache_hits")
    if onnx and mlflow and ceiling:
        check(
            "ONNX c=64 >= 20x mlflow", onnx.rps >= 20 * mlflow.rps, f"{onnx.rps / mlflow.rps:.1f}x"
        )
        check(
            "ONNX c=64 >= 0.6x ceiling",
            onnx.rps >= 0.6 * ceiling.rps,
            f"{onnx.rps / ceiling.rps:.2f}x",
        )
        check("ONNX c=64 p99 <= 150 ms", onnx.p99_ms <= 150, f"{onnx.p99_ms:.1f} ms")
        check("ONNX c=64 zero errors", onnx.errors == 0, f"{onnx.errors} errors")
    if sk and mlflow:
        check(
            "sklearn+coalescing c=64 >= 10x mlflow",
            sk.rps >= 10 * mlflow.rps,
            f"{sk.rps / mlflow.rps:.1f}x",
        )
    if hits and ceiling:
        check(
            "cache hits c=64 >= 0.8x ceiling",
            hits.rps >= 0.8 * ceiling.rps,
            f"{hits.rps / ceiling.rps:.2f}x",
        )
    if batch:
        check("1M-row job >= 0.5x in-process", batch["ratio"] >= 0.5, f"{batch['ratio']:.2f}x")
    # The cache-miss cases are only what they claim if their rows never repeated.
    for name in ("onnx", "onnx_cache_on", "sklearn"):
        target = by_name.get(name)
        if target is not None:
            seen = sum(int(c.get("hits", 0)) for c in target.cache)
            check(f"{name}: every row new (cache hits 0)", seen == 0, f"{seen} hits")
    if hits is not None and "cache_hits" in by_name:
        counts = by_name["cache_hits"].cache[-1]
        check(
            "cache_hits c=64: answered from the cache",
            counts.get("misses", 1) == 0 and counts.get("hits", 0) > 0,
            f"{int(counts.get('hits', 0))} hits, {int(counts.get('misses', 0))} misses",
        )
    return checks


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "?"


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{'target':<40} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>9} "
        f"{'errors':>6} {'hits':>7} {'misses':>7}"
    )
    for target in report["targets"].values():
        for load, cache in zip(target["loads"], target["cache"], strict=True):
            print(
                f"{target['label'][:40]:<40} {load['connections']:>5} {load['rps']:>9.1f} "
                f"{load['p50_ms']:>8.2f} {load['p99_ms']:>9.2f} {load['errors']:>6} "
                f"{int(cache['hits']) if cache else '-':>7} "
                f"{int(cache['misses']) if cache else '-':>7}"
            )
    print("\nratios (req/s, same concurrency):")
    for name, values in report["ratios"].items():
        shown = ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)
        print(f"  {name:<14} {shown}")
    print(
        "\nmemory (RSS MiB, ready -> after the runs): "
        + ", ".join(
            f"{n} {t['rss_ready_mb']} -> {t['rss_mb']}" for n, t in report["targets"].items()
        )
    )
    if report["batch"]:
        b = report["batch"]
        print(
            f"batch: {b['rows']:,} rows: job {b['job_rows_per_s']:,} rows/s, in-process "
            f"{b['baseline_rows_per_s']:,} rows/s, ratio {b['ratio']}"
        )
    print("\ntargets:")
    for item in report["checks"]:
        mark = "MET" if item["met"] else "NOT MET"
        print(f"  [{mark:>7}] {item['target']}: {item['detail']}")


if __name__ == "__main__":
    main()
