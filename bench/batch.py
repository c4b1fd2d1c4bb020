"""The batch part of `make bench`: a 1,000,000-row CSV job against an in-process baseline.

The job is timed from the start of the upload until the results CSV is downloaded, with one
worker process. The baseline reads the same CSV with pandas, runs `predict_proba` on the same
estimator and writes a results CSV, in one process.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from devstack.processes import Gateway
from registry.model import LoadedModel
from registry.train import FEATURES


@dataclass(frozen=True)
class BatchResult:
    rows: int
    job_seconds: float
    job_rows_per_s: float
    baseline_seconds: float
    baseline_rows_per_s: float
    ratio: float
    runtime: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    low = np.array([4.3, 2.0, 1.0, 0.1])
    high = np.array([7.9, 4.4, 6.9, 2.5])
    data = np.round(rng.uniform(low, high, size=(rows, 4)), 1)
    pd.DataFrame(data, columns=list(FEATURES)).to_csv(path, index=False)


def baseline(model: LoadedModel, source: Path, target: Path) -> float:
    """Seconds for read CSV -> predict_proba -> write results CSV, in this process."""
    started = time.perf_counter()
    frame = pd.read_csv(source)
    proba = model.estimator.predict_proba(frame.to_numpy())
    classes = np.asarray(model.estimator.classes_)
    out = pd.DataFrame(proba, columns=[f"p_{c}" for c in classes])
    out.insert(0, "prediction", classes.take(proba.argmax(axis=1)))
    out.to_csv(target, index=False)
    return time.perf_counter() - started


def run_job(gateway: Gateway, source: Path, target: Path, model: str) -> float:
    """Seconds from the start of the upload until the results CSV is on disk."""
    headers = {"X-API-Key": gateway.api_key or "", "Content-Type": "text/csv"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=600) as http:
        started = time.perf_counter()
        with source.open("rb") as body:
            submitted = http.post(f"/v1/models/{model}/jobs", content=body)
        if submitted.status_code != 202:
            raise RuntimeError(f"submission refused: {submitted.status_code} {submitted.text}")
        location = submitted.headers["location"]
        while True:
            status = http.get(location).json()
            if status["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        if status["status"] != "succeeded":
            raise RuntimeError(f"job ended {status['status']}: {status}")
        with (
            http.stream("GET", f"{location}/results", headers={"Accept": "text/csv"}) as answer,
            target.open("wb") as out,
        ):
            answer.raise_for_status()
            for block in answer.iter_bytes(1 << 20):
                out.write(block)
        return time.perf_counter() - started


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def measure(gateway: Gateway, model: LoadedModel, workdir: Path, rows: int) -> BatchResult:
    source = workdir / "batch-input.csv"
    write_csv(source, rows)
    base_seconds = baseline(model, source, workdir / "baseline-results.csv")
    job_seconds = run_job(gateway, source, workdir / "job-results.csv", model.name)
    got = count_lines(workdir / "job-results.csv") - 1
    if got != rows:
        raise RuntimeError(f"the job's results have {got} rows, not {rows}")
    return BatchResult(
        rows=rows,
        job_seconds=round(job_seconds, 2),
        job_rows_per_s=round(rows / job_seconds),
        baseline_seconds=round(base_seconds, 2),
        baseline_rows_per_s=round(rows / base_seconds),
        ratio=round(base_seconds / job_seconds, 3),
        runtime=model.runtime.name,
    )
