"""The protocol section of `make bench` (`--only protocols`): Modelgate's V2 REST, MLflow scoring
and V2 gRPC routes against its own `/v1` predict, and Seldon MLServer serving the same model.

One gateway as shipped (the demo iris model, its default runtime and cache mode, API key, rate
limits, JSON access log) with `MODELGATE_GRPC_PORT` set, measured at 64 connections with wrk,
a new row on every request (bench/rows.lua; cache misses, checked), one route after another:
- `/v1/models/iris/predict` with `{"instances": [[...]]}`: the baseline of the ratios;
- `/v2/models/iris/infer`: one 2-D FP32 tensor `[1, 4]` as tritonclient's HTTP client sends a
  float32 numpy array in JSON mode (rows.lua's `v2`);
- `/invocations` with `{"dataframe_split": {"columns": [...], "data": [[...]]}}`, as MLflow's
  clients send a DataFrame (rows.lua's `mlflow`);
- gRPC `inference.GRPCInferenceService/ModelInfer`, 64 calls in flight (bench/grpc_driver.py:
  `raw_input_contents`, as tritonclient's gRPC client sends a tensor), key in `x-api-key`.
The driver's own ceiling: the same driver against a trivial grpc.aio echo server.

The peer (bench/mlserver/): MLServer 1.7.1 with mlserver-sklearn, in a venv of its own,
serving the registered version's fitted estimator exported with joblib as `model.joblib`, over
V2 JSON with the same bodies as Modelgate's V2 row, measured in each of its setups (inference
workers, adaptive batching) and compared at its best (the ratio to its defaults is shown too).
Without `outputs` in the request it answers `predict` only, where Modelgate's V2 answers
`predict` and `predict_proba`: that leans its way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.mlserver import MLSERVER_DEFAULTS, measure_mlserver
from bench.servers import (
    ROWS_PER_RUN,
    WARMUP_OFFSET,
    Target,
    cache_counts,
    measure_target,
    rss_mb,
)
from bench.stack import MODEL, Stack
from bench.wrk import Load
from devstack.processes import Service, free_port

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
IN_FLIGHT = 64
#: The issue's targets, at 64 connections (64 calls in flight for gRPC).
V2_VS_V1 = INVOCATIONS_VS_V1 = 0.8
V2_VS_MLSERVER = 10
GRPC_VS_V2 = 1.0
#: A row outside bench/rows.lua's ranges, for the one probe of each route: never a measured row.
PROBE_ROW = [8.0, 4.5, 7.0, 2.7]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
V2_PROBE = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": PROBE_ROW}]}


def measure_protocols(stack: Stack, seconds: float, warmup: float) -> dict[str, Any]:
    """The gateway's routes, the driver's ceiling, then MLServer in each setup."""
    assert stack.model is not None
    section: dict[str, Any] = {
        "connections": CONNECTIONS,
        "grpc_in_flight": IN_FLIGHT,
        "model": {"name": MODEL, "version": stack.model.version},
        "targets": {},
        "errors": {},
        # Other work on the machine moves the figures: the 1-minute load before and after.
        "load_average": {"start": os.getloadavg()[0]},
    }
    timing = {"seconds": seconds, "warmup": warmup}
    offset = _measure_gateway(stack, section, timing, 0)
    offset = _measure_ceiling(stack.workdir, section, timing, offset)
    measure_mlserver(stack, section, timing, offset, V2_PROBE, CONNECTIONS)
    section["ratios"] = _ratios(section)
    section["load_average"]["end"] = os.getloadavg()[0]
    return section


def _measure_gateway(
    stack: Stack, section: dict[str, Any], timing: dict[str, float], offset: int
) -> int:
    grpc_port = free_port()
    try:
        gateway = stack.gateway(grpc_port=str(grpc_port))
    except TimeoutError as exc:
        section["errors"]["gateway"] = str(exc)
        print(f"  protocols: the gateway did not start: {exc}")
        return offset
    try:
        settings = {k: v for k, v in (gateway.env or {}).items() if k.startswith("MODELGATE_")}
        section["gateway"] = {"settings": settings, "probes": {}}
        routes = (
            (Target("v1", "Modelgate /v1 predict (baseline)", "v1"), f"/v1/models/{MODEL}/predict",
             {"instances": [PROBE_ROW]}),
            (Target("v2", "Modelgate V2 REST, FP32 [1,4] JSON", "v2"), f"/v2/models/{MODEL}/infer",
             V2_PROBE),
            (Target("invocations", "Modelgate /invocations, dataframe_split", "mlflow"),
             "/invocations", {"dataframe_split": {"columns": COLUMNS, "data": [PROBE_ROW]}}),
        )  # fmt: skip
        for target, path, probe in routes:
            url = gateway.url + path
            if not _probe(section, target.name, gateway.http, url, probe):
                continue
            offset = measure_target(
                target,
                gateway,
                url,
                api_key=stack.api_key,
                connections=[CONNECTIONS],
                offset=offset,
                **timing,
            )
            section["targets"][target.name] = asdict(target) | {"path": path}
        grpc = Target("grpc", "Modelgate V2 gRPC ModelInfer (raw FP32)", "grpc")
        grpc.rss_ready_mb = rss_mb(gateway)
        offset += ROWS_PER_RUN
        before = cache_counts(gateway)
        driven = drive_grpc(f"127.0.0.1:{grpc_port}", offset, timing, api_key=stack.api_key)
        if driven.get("failed"):
            section["errors"]["grpc"] = driven["failed"]
            print(f"  {'grpc':<16} not measured: {driven['failed']}")
        else:
            after = cache_counts(gateway)
            grpc.cache.append({k: after[k] - before.get(k, 0) for k in after})
            grpc.loads.append(_load(driven))
            grpc.rss_mb = rss_mb(gateway)
            section["targets"]["grpc"] = asdict(grpc) | {"driver": _driver(driven)}
            _print_load("grpc", grpc.loads[0])
    finally:
        gateway.stop()
    return offset


def _probe(section: dict[str, Any], name: str, http: httpx.Client, url: str, body: Any) -> bool:
    """One request on a row no run sends: is the route served? Its answer is kept."""
    try:
        answer = http.post(url, json=body)
    except httpx.HTTPError as exc:
        section["errors"][name] = f"{url}: {exc}"
        return False
    section.setdefault("gateway", {}).setdefault("probes", {})[name] = {
        "status": answer.status_code,
        "runtime": answer.headers.get("X-Model-Runtime"),
        "body": answer.text[:400],
    }
    if answer.status_code != 200:
        section["errors"][name] = f"{url}: {answer.status_code} {answer.text[:200]}"
        print(f"  {name:<16} not measured: {section['errors'][name]}")
        return False
    return True


def drive_grpc(
    address: str, offset: int, timing: dict[str, float], api_key: str = ""
) -> dict[str, Any]:
    """bench/grpc_driver.py in its own process, IN_FLIGHT calls in flight; its BENCH_JSON,
    or `{"failed": why}`."""
    argv = [
        sys.executable, "-m", "bench.grpc_driver", "drive", "--address", address,
        "--model", MODEL, "--in-flight", str(IN_FLIGHT), "--seconds", f"{timing['seconds']:g}",
        "--warmup", f"{timing['warmup']:g}", "--offset", str(offset),
        "--warmup-offset", str(WARMUP_OFFSET + offset),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_API_KEY": api_key, "PYTHONPATH": str(ROOT)}
    limit = timing["seconds"] + timing["warmup"] + 120
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"failed": f"the gRPC driver ran past {limit:g} s"}
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        return {"failed": f"driver exit {done.returncode}: {done.stderr.strip()[-600:]}"}
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    if not result["requests"]:
        result["failed"] = f"no call answered: {result['first_error']}"
    return result


def _load(driven: dict[str, Any]) -> Load:
    fields = ("requests", "seconds", "rps", "p50_ms", "p99_ms", "errors")
    return Load(connections=driven["in_flight"], **{k: driven[k] for k in fields})


def _driver(driven: dict[str, Any]) -> dict[str, Any]:
    """What the driver says of itself beside the load: its CPU, the first answer, errors."""
    keep = (
        "processes",
        "driver_cpu_cores",
        "driver_cpu_us_per_request",
        "rows_sent",
        "first_error",
        "answer",
    )
    return {k: driven.get(k) for k in keep}


def _print_load(name: str, load: Load) -> None:
    print(
        f"  {name:<16} c={load.connections:<3} {load.rps:>8.1f} req/s  "
        f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:8.2f} ms  errors {load.errors}"
    )


def _measure_ceiling(
    workdir: Path, section: dict[str, Any], timing: dict[str, float], offset: int
) -> int:
    """The same driver against `bench.grpc_driver echo`: what it reaches when the server
    does nothing."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.grpc_driver", "echo", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    echo = Service("grpc-echo", argv, workdir / "grpc-echo.log", env)
    echo.start()
    try:
        offset += ROWS_PER_RUN
        driven = drive_grpc(f"127.0.0.1:{port}", offset, timing)
    finally:
        echo.stop()
    if driven.get("failed"):
        section["errors"]["grpc_ceiling"] = driven["failed"]
        print(f"  {'grpc_ceiling':<16} not measured: {driven['failed']}")
        return offset
    target = Target("grpc_ceiling", "gRPC driver ceiling (grpc.aio echo)", "grpc")
    target.loads.append(_load(driven))
    section["targets"]["grpc_ceiling"] = asdict(target) | {"driver": _driver(driven)}
    _print_load("grpc_ceiling", target.loads[0])
    return offset


def _rps(section: dict[str, Any], name: str) -> float | None:
    target = section["targets"].get(name)
    return target["loads"][0]["rps"] if target and target["loads"] else None


def _ratios(section: dict[str, Any]) -> dict[str, float | None]:
    def ratio(mine: str | None, theirs: str | None) -> float | None:
        a = _rps(section, mine) if mine else None
        b = _rps(section, theirs) if theirs else None
        return round(a / b, 2) if a and b else None

    best = (section.get("mlserver") or {}).get("best")
    return {
        "v2_vs_v1": ratio("v2", "v1"),
        "invocations_vs_v1": ratio("invocations", "v1"),
        "v2_vs_mlserver": ratio("v2", best),
        "v2_vs_mlserver_defaults": ratio("v2", MLSERVER_DEFAULTS),
        "grpc_vs_v2": ratio("grpc", "v2"),
        "grpc_vs_ceiling": ratio("grpc", "grpc_ceiling"),
    }


def _predicted(body: str) -> Any:
    """The `predict` output's data of a V2 answer, or None."""
    try:
        outputs = json.loads(body).get("outputs", [])
    except (ValueError, AttributeError):
        return None
    return next((o.get("data") for o in outputs if o.get("name") == "predict"), None)


def protocol_checks(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets for this section, each with the figures it was judged on."""
    if not section:
        return []
    checks: list[dict[str, Any]] = []

    def check(what: str, ok: bool, detail: str) -> None:
        checks.append({"target": what, "met": ok, "detail": detail})

    ratios, targets = section["ratios"], section["targets"]
    best = section.get("mlserver", {}).get("best")
    for key, goal, what in (
        ("v2_vs_v1", V2_VS_V1, "V2 REST c=64 >= 0.8x /v1 predict"),
        ("invocations_vs_v1", INVOCATIONS_VS_V1, "/invocations c=64 >= 0.8x /v1 predict"),
        ("v2_vs_mlserver", V2_VS_MLSERVER, f"V2 REST c=64 >= 10x MLServer (best: {best})"),
        ("grpc_vs_v2", GRPC_VS_V2, "gRPC ModelInfer, 64 in flight >= 1.0x V2 REST"),
    ):
        value = ratios.get(key)
        check(what, value is not None and value >= goal, f"{value}x" if value else "not measured")
    grpc, ceiling = targets.get("grpc"), targets.get("grpc_ceiling")
    if grpc and ceiling:
        cores = grpc["driver"]["driver_cpu_cores"]
        check(
            "gRPC driver not the limit (ceiling above the gateway, driver < 0.9 core)",
            ceiling["loads"][0]["rps"] > grpc["loads"][0]["rps"] and cores < 0.9,
            f"ceiling {ceiling['loads'][0]['rps']:,} req/s, gateway at "
            f"{ratios.get('grpc_vs_ceiling')}x of it; driver {cores} cores during the gateway run",
        )
    errors = {n: sum(x["errors"] for x in t["loads"]) for n, t in targets.items()}
    check("protocols: zero errors", not any(errors.values()), f"{errors}")
    ours = [n for n in ("v1", "v2", "invocations", "grpc") if n in targets]
    hits = {n: int(sum(c.get("hits", 0) for c in targets[n]["cache"])) for n in ours}
    misses = sum(int(c.get("misses", 0)) for n in ours for c in targets[n]["cache"])
    unused = "" if misses else " (no misses either: this runtime's cache mode skips the cache)"
    check("protocols: every row new (cache hits 0)", not any(hits.values()), f"{hits}{unused}")
    theirs = (section.get("mlserver", {}).get("setups", {}).get(best) or {}).get("probe")
    ours = section.get("gateway", {}).get("probes", {}).get("v2")
    if theirs and ours:
        mlserver, modelgate = _predicted(theirs["body"]), _predicted(ours["body"])
        check(
            "MLServer and Modelgate predict the same class (probe row)",
            mlserver is not None and mlserver == modelgate,
            f"MLServer {mlserver}, Modelgate {modelgate}",
        )
    return checks


def print_protocols(section: dict[str, Any]) -> None:
    load = section["load_average"]
    print(
        f"\nprotocols (c={section['connections']}, gRPC {section['grpc_in_flight']} in flight; "
        f"load average {load['start']:.1f} -> {load['end']:.1f}):"
    )
    print(f"{'target':<40} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>9} {'errors':>6}")
    for target in section["targets"].values():
        for load in target["loads"]:
            print(
                f"{target['label'][:40]:<40} {load['connections']:>5} {load['rps']:>9.1f} "
                f"{load['p50_ms']:>8.2f} {load['p99_ms']:>9.2f} {load['errors']:>6}"
            )
    print("  ratios: " + ", ".join(f"{k} {v}" for k, v in section["ratios"].items()))
    for name in ("grpc", "grpc_ceiling"):
        driver = section["targets"].get(name, {}).get("driver")
        if driver:
            print(
                f"  {name} driver: {driver['driver_cpu_cores']} cores, "
                f"{driver['driver_cpu_us_per_request']} us CPU a call"
            )
    mlserver = section.get("mlserver") or {}
    if mlserver.get("best"):
        print(f"  MLServer {mlserver.get('versions')}: best setup {mlserver['best']}")
    for name, error in section["errors"].items():
        print(f"  {name}: not measured: {error.splitlines()[0][:160]}")
