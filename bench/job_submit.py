"""`python -m bench.job_submit`: a job submission's latency against the owner's stored jobs, and
the durable Redis's bytes per row of a job that succeeded. A measurement, not a test.

Latency: `JobClient.submit` of a 10-row job (one chunk) on a redis-server of its own, when the
owner has 1 stored job and when it has `--stored` (1,000) stored jobs, all succeeded: p50 and
p99 of `--samples` submissions each. No worker runs: the tasks wait in the queue, as they
would behind busy workers, and every measured job is then marked succeeded too.

Bytes per row: a `--bytes-rows` (100,000) row CSV job (an id column and the demo iris model's
4 float features) through a gateway and one worker of the real stack (MLflow, the demo model
and its ONNX twin), then `MEMORY USAGE` of each of the job's keys once it succeeded, and the
change of `INFO used_memory` from before the upload.

Results on stdout, and in bench/results/job_submit.json under `--label` (a file kept across
runs, so that a run of the old code and one of the new sit side by side).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from redis import Redis

from bench.stack import KEY_PREFIX, Stack
from devstack.processes import RedisServer, Worker
from jobs.client import JobClient
from kernel.settings import SharedSettings

RESULTS = Path(__file__).with_name("results") / "job_submit.json"
ROW = [5.1, 3.5, 1.4, 0.2]


def submit(client: JobClient, owner: str) -> str:
    rows = [ROW] * 10
    ids = [[f"r{i}"] for i in range(10)]
    record = client.submit(
        owner=owner,
        model="iris",
        version=1,
        id_columns=["rid"],
        classes=[0, 1, 2],
        chunks=iter([(rows, ids)]),
    )
    return record.id


def succeed(client: JobClient, job_id: str) -> None:
    client.store.update(job_id, status="succeeded", finished=time.time())


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def timed_submits(client: JobClient, owners: list[str]) -> list[float]:
    seconds = []
    for owner in owners:
        started = time.perf_counter()
        job_id = submit(client, owner)
        seconds.append(time.perf_counter() - started)
        succeed(client, job_id)
    return seconds


def measure_latency(workdir: Path, stored: int, samples: int) -> dict[str, Any]:
    redis = RedisServer(workdir / "redis-latency", "durable")
    redis.start()
    settings = SharedSettings(
        redis_url=redis.url,
        key_prefix="benchsubmit:",
        max_running_jobs_per_owner=10**6,
        max_stored_rows_per_owner=10**9,
        max_stored_bytes_per_owner=2**40,  # a setting the old code does not have: ignored
    )
    client = JobClient(settings)
    try:
        timed_submits(client, [f"warm-{i}" for i in range(20)])
        one = [f"one-{i}" for i in range(samples)]
        for owner in one:
            succeed(client, submit(client, owner))
        at_one = timed_submits(client, one)
        for _ in range(stored):
            succeed(client, submit(client, "many"))
        at_many = timed_submits(client, ["many"] * samples)
    finally:
        client.close()
        redis.stop()
    cases = {"at_1": percentiles(at_one), f"at_{stored}": percentiles(at_many)}
    for name, r in cases.items():
        print(f"  submit {name}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    return {"samples": samples, "stored": stored, **cases}


def csv_body(rows: int) -> bytes:
    rng = np.random.default_rng(7)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    data = np.round(rng.uniform(low, high, size=(rows, 4)), 2).tolist()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rid", "sepal_length", "sepal_width", "petal_length", "petal_width"])
    for i, row in enumerate(data):
        writer.writerow([f"r{i}", *row])
    return out.getvalue().encode()


def key_part(key: bytes, job_id: str) -> str:
    """`record`, `in`, `ids`, `out`, `done`, ... for one of the job's keys."""
    rest = key.decode().split(job_id, 1)[1].lstrip(":")
    return rest.split(":")[0] or "record"


def measure_bytes(workdir: Path, rows: int) -> dict[str, Any]:
    stack = Stack(workdir)
    try:
        stack.start()
        gateway = stack.gateway(max_job_rows=str(max(rows, 1_000_000)))
        stack.exits.callback(gateway.stop)
        env = {k: v for k, v in (gateway.env or {}).items() if k.startswith("MODELGATE_")}
        env.pop("MODELGATE_METRICS_PORT", None)
        env["MODELGATE_WORKER_CONCURRENCY"] = "1"
        worker = Worker(workdir / "worker", env)
        worker.start()
        stack.exits.callback(worker.stop)
        assert stack.redis is not None
        redis = stack.exits.enter_context(Redis.from_url(stack.redis.url))
        body = csv_body(rows)
        headers = {"X-API-Key": stack.api_key, "Content-Type": "text/csv"}
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=600) as http:
            before = int(redis.info("memory")["used_memory"])
            accepted = http.post("/v1/models/iris/jobs", content=body, params={"id_columns": "rid"})
            if accepted.status_code != 202:
                raise RuntimeError(f"refused: {accepted.status_code} {accepted.text}")
            job_id = accepted.json()["job_id"]
            while (status := http.get(f"/v1/jobs/{job_id}").json())["status"] in (
                "queued",
                "running",
            ):
                time.sleep(0.2)
            if status["status"] != "succeeded":
                raise RuntimeError(f"the job ended {status}")
            time.sleep(1)  # the worker's last writes after the status change (retention)
            after = int(redis.info("memory")["used_memory"])
        by_part: dict[str, int] = {}
        for key in redis.scan_iter(f"{KEY_PREFIX}job:{job_id}*", count=1000):
            size = int(redis.memory_usage(key, samples=0) or 0)
            part = key_part(key, job_id)
            by_part[part] = by_part.get(part, 0) + size
    finally:
        stack.exits.close()
    total = sum(by_part.values())
    result = {
        "rows": rows,
        "upload_bytes": len(body),
        "keys_bytes": total,
        "keys_bytes_per_row": round(total / rows, 1),
        "by_part_bytes_per_row": {p: round(b / rows, 1) for p, b in sorted(by_part.items())},
        "used_memory_delta_per_row": round((after - before) / rows, 1),
    }
    print(
        f"  bytes: {result['keys_bytes_per_row']} B/row in the job's keys "
        f"{result['by_part_bytes_per_row']}, "
        f"used_memory +{result['used_memory_delta_per_row']} B/row"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.job_submit", description=__doc__)
    parser.add_argument("--label", default="current", help="the key of this run in the JSON")
    parser.add_argument("--stored", type=int, default=1000, help="stored jobs of one owner")
    parser.add_argument("--samples", type=int, default=200, help="submissions timed per case")
    parser.add_argument("--bytes-rows", type=int, default=100_000, help="0 skips the job")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-submit-"))
    import jobs.store

    print(f"bench.job_submit: {args.label}, jobs code from {Path(jobs.store.__file__).parent}")
    report: dict[str, Any] = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["jobs_code"] = str(Path(jobs.store.__file__).parent)
    report["latency"] = measure_latency(workdir, args.stored, args.samples)
    if args.bytes_rows:
        report["bytes"] = measure_bytes(workdir, args.bytes_rows)
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[args.label] = report
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"bench.job_submit: written to {args.out}")


if __name__ == "__main__":
    main()
