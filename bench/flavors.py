"""The flavor section of `make bench` (`--only flavors`): boosters logged the ordinary MLflow
way, served by Modelgate and by `mlflow models serve`.

An XGBoost and a LightGBM classifier (200 trees each, one 30-feature synthetic data set from
scikit-learn's `make_classification`) are logged with `mlflow.xgboost.log_model` and
`mlflow.lightgbm.log_model` (LightGBM's Booster, its own text format) and registered with the
alias `production`, with no Modelgate digest: the gateway trusts them on first use, as it does
any version logged that way. Each is then served by one Modelgate gateway and by one
`mlflow models serve` of the same version, one server at a time, driven by wrk with a new
30-feature row on every request (bench/rows.lua), so every Modelgate answer is a cache miss
(checked). Beside them, the library's own predict of one row in this process, for scale.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.servers import Target, measure_target
from bench.stack import Stack
from devstack.processes import Service
from registry.client import Registry

FEATURES = 30
TREES = 200
SAMPLES = 5_000
FLAVORS = ("xgboost", "lightgbm")
EXPERIMENT = "modelgate_bench_flavors"
#: The issue's target: Modelgate at 64 connections against `mlflow models serve`.
TARGET_RATIO = 20
#: One-row predict calls timed in process (after as many again to warm up).
NATIVE_CALLS = 2_000


@dataclass(frozen=True)
class FlavorModel:
    """A registered version and its in-process predict of one row."""

    flavor: str
    name: str
    version: int
    predict_one: Callable[[np.ndarray], Any]


def register(stack: Stack, flavor: str) -> FlavorModel:
    """Train the flavor's classifier and log it with its MLflow flavor, registered."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import make_classification

    assert stack.mlflow is not None
    x, y = make_classification(
        n_samples=SAMPLES, n_features=FEATURES, n_informative=12, random_state=0
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
    name = f"flavor_{flavor}"
    mlflow.set_tracking_uri(stack.mlflow.url)
    mlflow.set_registry_uri(stack.mlflow.url)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run():
        if flavor == "xgboost":
            import xgboost

            model = xgboost.XGBClassifier(n_estimators=TREES, max_depth=6).fit(frame, y)
            logged: Any = model
            predict_one: Callable[[np.ndarray], Any] = model.predict_proba
        else:
            import lightgbm

            fitted = lightgbm.LGBMClassifier(n_estimators=TREES, verbose=-1).fit(frame, y)
            logged = fitted.booster_  # the scikit-learn wrapper would be pickled
            predict_one = logged.predict
        signature = infer_signature(frame.head(100), np.asarray(logged.predict(frame.head(100))))
        info = getattr(mlflow, flavor).log_model(
            logged,
            name="model",
            signature=signature,
            input_example=frame.head(2),
            registered_model_name=name,
        )
    version = int(info.registered_model_version)
    Registry(stack.mlflow.url).set_alias(name, "production", version)
    return FlavorModel(flavor, name, version, predict_one)


def native_timing(model: FlavorModel, calls: int = NATIVE_CALLS) -> dict[str, float]:
    """Microseconds of the library's own predict of one row (a float64 array), in process."""
    row = np.linspace(-1.0, 1.0, FEATURES).reshape(1, FEATURES)
    for _ in range(calls):
        model.predict_one(row)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict_one(row)
        times.append(time.perf_counter() - started)
    p50 = statistics.median(times) * 1e6
    return {
        "calls": calls,
        "p50_us": round(p50, 1),
        "mean_us": round(statistics.fmean(times) * 1e6, 1),
        "calls_per_s_at_p50": round(1e6 / p50, 1),
    }


def measure_flavors(
    stack: Stack, connections: list[int], seconds: float, warmup: float
) -> dict[str, Any]:
    """Each flavor: native timing, then Modelgate, then `mlflow models serve`."""
    models: dict[str, Any] = {}
    offset = 0
    for flavor in FLAVORS:
        model = register(stack, flavor)
        print(f"  flavors: {model.name} version {model.version} registered ({TREES} trees)")
        entry: dict[str, Any] = {
            "name": model.name,
            "version": model.version,
            "native_one_row": native_timing(model),
            "runtime": None,
            "gateway_error": None,
            "targets": {},
        }
        print(f"  {flavor + '_native':<16} one row in process: {entry['native_one_row']}")
        modelgate = Target(f"{flavor}_modelgate", f"Modelgate, {flavor}, every row new", "v1")
        mlflow = Target(f"{flavor}_mlflow", f"mlflow models serve, {flavor}", "mlflow")
        modelgate.width = mlflow.width = FEATURES
        timing = (stack, connections, seconds, warmup)
        try:
            gateway = stack.gateway(models=f"{model.name}@production")
        except TimeoutError as exc:  # the loader does not serve the flavor: the rest still runs
            entry["gateway_error"] = str(exc)
            print(f"  {modelgate.name:<16} not measured: {exc}")
        else:
            url = gateway.url + f"/v1/models/{model.name}/predict"
            try:
                entry["runtime"] = _runtime_header(gateway, url)
            except Exception:
                gateway.stop()
                raise
            offset = _measured(modelgate, gateway, url, *timing, offset)
            entry["targets"][modelgate.name] = _as_dict(modelgate)
        service, url = stack.mlflow_serve(model.name, model.version)
        offset = _measured(mlflow, service, url, *timing, offset)
        entry["targets"][mlflow.name] = _as_dict(mlflow)
        entry["ratios"] = {
            f"vs_mlflow_c{mine.connections}": round(mine.rps / theirs.rps, 2)
            if theirs.rps
            else None
            for mine, theirs in zip(modelgate.loads, mlflow.loads, strict=False)
        }
        models[flavor] = entry
    return {
        "dataset": {"samples": SAMPLES, "features": FEATURES, "trees": TREES},
        "models": models,
    }


def _measured(
    target: Target,
    service: Service,
    url: str,
    stack: Stack,
    connections: list[int],
    seconds: float,
    warmup: float,
    offset: int,
) -> int:
    try:
        return measure_target(
            target,
            service,
            url,
            api_key=stack.api_key,
            connections=connections,
            seconds=seconds,
            warmup=warmup,
            offset=offset,
        )
    finally:
        service.stop()


def _runtime_header(gateway: Any, url: str) -> str | None:
    """Which runtime answers (X-Model-Runtime), from a row outside bench/rows.lua's [-5, 5)."""
    row = [[5.5] * FEATURES]
    answer = gateway.http.post(url, json={"instances": row})
    answer.raise_for_status()
    return answer.headers.get("X-Model-Runtime")


def _as_dict(target: Target) -> dict[str, Any]:
    return {
        "label": target.label,
        "loads": [load.as_dict() for load in target.loads],
        "cache": target.cache,
        "rss_ready_mb": target.rss_ready_mb,
        "rss_mb": target.rss_mb,
    }


def flavor_checks(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The section's targets: 20x `mlflow models serve` at c=64, no errors, no cache hit."""
    checks: list[dict[str, Any]] = []

    def check(what: str, ok: bool, detail: str) -> None:
        checks.append({"target": what, "met": ok, "detail": detail})

    for flavor, entry in (section or {}).get("models", {}).items():
        mine = entry["targets"].get(f"{flavor}_modelgate")
        theirs = entry["targets"].get(f"{flavor}_mlflow")
        c64 = entry.get("ratios", {}).get("vs_mlflow_c64")
        goal = f"{flavor} c=64 >= {TARGET_RATIO}x mlflow"
        if mine is None:
            check(goal, False, f"Modelgate not measured: {entry['gateway_error']}")
        elif c64 is not None:
            check(goal, c64 >= TARGET_RATIO, f"{c64:.1f}x")
        measured = [target for target in (mine, theirs) if target is not None]
        errors = sum(load["errors"] for target in measured for load in target["loads"])
        check(f"{flavor}: zero errors (both servers)", errors == 0, f"{errors} errors")
        if mine is not None:
            hits = sum(int(c.get("hits", 0)) for c in mine["cache"])
            check(f"{flavor}: every row new (cache hits 0)", hits == 0, f"{hits} hits")
    return checks


def print_flavors(section: dict[str, Any]) -> None:
    print(f"\nflavors ({section['dataset']}):")
    print(f"{'target':<40} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>9} {'errors':>6}")
    for flavor, entry in section["models"].items():
        for target in entry["targets"].values():
            for load in target["loads"]:
                print(
                    f"{target['label'][:40]:<40} {load['connections']:>5} {load['rps']:>9.1f} "
                    f"{load['p50_ms']:>8.2f} {load['p99_ms']:>9.2f} {load['errors']:>6}"
                )
        native = entry["native_one_row"]
        ratios = ", ".join(f"{k} {v}" for k, v in entry.get("ratios", {}).items())
        print(
            f"  {flavor}: runtime {entry['runtime']}; ratios {ratios or '-'}; one row in "
            f"process p50 {native['p50_us']} us ({native['calls_per_s_at_p50']:,} calls/s)"
        )
