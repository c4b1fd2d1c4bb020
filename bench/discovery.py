"""`python -m bench.discovery`: the cost of one discovery scan (`*@production` patterns).

Starts its own `mlflow server` (sqlite, as `make up`), registers `--models` registered models
with one version each (a stub source: nothing is loaded) and the alias `production` on every
`--alias-every`th, then times what a gateway with patterns does once per refresh interval:
the scan (`Registry.registered_models()`, all pages), matching it against the patterns, and the
search for versions whose verdict the CLI requested. Results: a line on stdout and JSON in
bench/results/discovery-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

from devstack.processes import MlflowServer
from gateway.dataplane.served import scan
from kernel.loading import LoadOptions
from kernel.settings import RegistrySettings
from registry.client import Registry, configure_mlflow_http
from registry.verdicts import fingerprint, request_verdict, requested_versions

RESULTS = Path(__file__).with_name("results")


def register(registry: Registry, count: int, alias_every: int, threads: int) -> float:
    """Register `count` models (one stub version each); returns the seconds it took."""

    def one(i: int) -> None:
        name = f"model-{i:05d}"
        registry.client.create_registered_model(name)
        mv = registry.client.create_model_version(name, source=f"s3://bench/{name}", run_id=None)
        if i % alias_every == 0:
            registry.set_alias(name, "production", int(mv.version))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def all_pages(registry: Registry, page_size: int) -> int:
    """Every registered model through MLflow's client directly, `page_size` per request."""
    count, token = 0, None
    while True:
        page = registry.client.search_registered_models(
            max_results=page_size, order_by=["name ASC"], page_token=token
        )
        count += len(page)
        token = page.token
        if not token:
            return count


def timed(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "min_ms": round(min(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=__doc__)
    parser.add_argument("--models", type=int, default=1000, help="registered models")
    parser.add_argument("--alias-every", type=int, default=1, help="1: every model has the alias")
    parser.add_argument("--repeat", type=int, default=7, help="scans timed")
    parser.add_argument("--threads", type=int, default=4, help="threads registering models")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-discovery-"))
    server = MlflowServer(workdir / "mlflow")
    server.start()
    try:
        configure_mlflow_http(RegistrySettings(mlflow_tracking_uri=server.url))
        registry = Registry(server.url)
        print(f"bench.discovery: registering {args.models} models in {server.url}")
        registering = register(registry, args.models, args.alias_every, args.threads)
        for i in range(0, min(args.models, 20)):
            request_verdict(registry, f"model-{i:05d}", 1)
        models = registry.registered_models()
        assert len(models) == args.models, len(models)
        registry.registered_models()  # warm: the first request opens the connection pool
        scan_cost = timed(registry.registered_models, args.repeat)
        # MLflow serves at most 1000 per page; Registry.registered_models asks for 200.
        big_pages = timed(lambda: all_pages(registry, 1000), args.repeat)
        match_cost = timed(lambda: scan(models, {}, ["production"], (), 100), args.repeat)
        fp = fingerprint(LoadOptions())
        search_cost = timed(lambda: requested_versions(registry, fp), args.repeat)
        served = scan(models, {}, ["production"], (), 100)
    finally:
        server.stop()
    report = {
        "kind": "discovery",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "mlflow": version("mlflow"),
        "backend": "sqlite, mlflow server --workers 1",
        "registered_models": args.models,
        "with_alias": sum(1 for i in range(args.models) if i % args.alias_every == 0),
        "register_seconds": round(registering, 1),
        "scan": scan_cost,
        "scan_pages": -(-args.models // 200),
        "scan_1000_per_page": big_pages,
        "match": match_cost,
        "verdict_request_search": search_cost,
        "served_at_cap_100": len(served.served),
        "over_cap": len(served.over_cap),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"discovery-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"one scan of {args.models} registered models: {scan_cost['median_ms']} ms median "
        f"({report['scan_pages']} pages; min {scan_cost['min_ms']}, max {scan_cost['max_ms']}); "
        f"{big_pages['median_ms']} ms at 1000 per page; matching {match_cost['median_ms']} ms; "
        f"verdict search {search_cost['median_ms']} ms"
    )
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
