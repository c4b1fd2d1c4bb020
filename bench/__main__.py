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
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.batch import measure
from bench.cli_timing import cli_checks, measure_cli
from bench.flavors import flavor_checks, measure_flavors, print_flavors
from bench.protocols import measure_protocols, print_protocols, protocol_checks
from bench.servers import Target, measure_target
from bench.stack import Stack
from bench.wrk import Load
from devstack.processes import Service, Worker

RESULTS = Path(__file__).with_name("results")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="wrk duration per run")
    parser.add_argument("--warmup", type=float, default=3, help="wrk warm-up per server")
    parser.add_argument("--connections", default="1,16,64", help="wrk concurrencies")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="0 skips the job")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated target names, `cli`, `flavors` and `protocols` among them "
        "(debugging)",
    )
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    wanted = {name for name in args.only.split(",") if name}
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    stack = Stack(workdir)
    print(f"bench: workdir {workdir}; starting Redis x2, MLflow, training the demo model")
    started = time.time()
    try:
        stack.start()
        targets = measure_servers(stack, connections, args, wanted)
        batch = None
        if args.batch_rows and not wanted:
            batch = measure_batch(stack, workdir, args.batch_rows)
        cli = measure_cli(stack) if not wanted or "cli" in wanted else None
        flavors = None
        if not wanted or "flavors" in wanted:
            flavors = measure_flavors(stack, connections, args.seconds, args.warmup)
        protocols = None
        if not wanted or "protocols" in wanted:
            protocols = measure_protocols(stack, args.seconds, args.warmup)
    finally:
        stack.close()
    report = build_report(targets, batch, connections, args, time.time() - started)
    report["cli"] = cli
    report["flavors"] = flavors
    report["protocols"] = protocols
    report["checks"].extend(cli_checks(cli or {}))
    report["checks"].extend(flavor_checks(flavors))
    report["checks"].extend(protocol_checks(protocols))
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
    stack: Stack, connections: list[int], args: argparse.Namespace, wanted: set[str]
) -> list[Target]:
    done: list[Target] = []
    offset = 0
    for target, start in targets_to_run():
        if wanted and target.name not in wanted:
            continue
        service, url = start(stack)
        try:
            offset = measure_target(
                target,
                service,
                url,
                api_key=stack.api_key,
                connections=connections,
                seconds=args.seconds,
                warmup=args.warmup,
                offset=offset,
            )
        finally:
            service.stop()
        done.append(target)
    return done


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


def print_servers(report: dict[str, Any]) -> None:
    """The main comparison: the table, the ratios and the memory of each server."""
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


def print_report(report: dict[str, Any]) -> None:
    if report["targets"]:
        print_servers(report)
    if report["batch"]:
        b = report["batch"]
        print(
            f"batch: {b['rows']:,} rows: job {b['job_rows_per_s']:,} rows/s, in-process "
            f"{b['baseline_rows_per_s']:,} rows/s, ratio {b['ratio']}"
        )
    if report["flavors"]:
        print_flavors(report["flavors"])
    if report["protocols"]:
        print_protocols(report["protocols"])
    print("\ntargets:")
    for item in report["checks"]:
        mark = "MET" if item["met"] else "NOT MET"
        print(f"  [{mark:>7}] {item['target']}: {item['detail']}")


if __name__ == "__main__":
    main()
