"""Load test of a running Modelgate stack (`make load`; or `locust -f tests/load/locustfile.py`).

The user mix: sync predictions on random rows, the same row again and again (cache hits),
the legacy `/predict` of the hand-written app, and one user submitting CSV batch jobs, polling
them until done, fetching the results and deleting the job.

Target: `--host`, else `MODELGATE_GATEWAY_URL`, else that line of `var/stack.env` (written by
`make up`). API key: `MODELGATE_API_KEY`, else the file `var/dev-api-key`. The default limits of
a key (1200 predictions a minute) would turn a load test into a rate-limit test: `make load`
creates a key with high limits for it.
"""

from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path
from typing import Any

import requests
from locust import HttpUser, between, events, task
from locust.env import Environment

STACK_ENV = Path("var/stack.env")
DEV_KEY = Path("var/dev-api-key")
MODEL = os.environ.get("LOAD_MODEL", "iris")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LOW = (4.3, 2.0, 1.0, 0.1)
HIGH = (7.9, 4.4, 6.9, 2.5)
JOB_ROWS = int(os.environ.get("LOAD_JOB_ROWS", "2000"))
JOB_TIMEOUT_SECONDS = 120.0
#: Whether the job user deletes each job once it is done with it (read, failed or timed out),
#: as a client should: kept for MODELGATE_JOB_RESULTS_TTL_SECONDS (24 h) instead, this load's
#: jobs (about 120,000 rows a minute) pass the owner's 5,000,000 stored rows in about 43 minutes,
#: and its submissions are refused from then on (LOAD_DELETE_JOBS=0 shows it).
DELETE_JOBS = os.environ.get("LOAD_DELETE_JOBS", "1") != "0"
#: How long a key that the gateways do not know yet (just created) is waited for.
PREFLIGHT_SECONDS = 15.0


def stack_value(name: str) -> str | None:
    """`name`'s value in var/stack.env, if the file has it."""
    if not STACK_ENV.is_file():
        return None
    for line in STACK_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def api_key() -> str:
    value = os.environ.get("MODELGATE_API_KEY") or (
        DEV_KEY.read_text().strip() if DEV_KEY.is_file() else ""
    )
    if not value:
        raise SystemExit(f"no API key: set MODELGATE_API_KEY or run `make up` (writes {DEV_KEY})")
    return value


def random_row() -> list[float]:
    return [round(random.uniform(low, high), 2) for low, high in zip(LOW, HIGH, strict=True)]


def csv_rows(n: int) -> bytes:
    out = io.StringIO()
    out.write("rid," + ",".join(FEATURES) + "\n")
    for i in range(n):
        out.write(f"r{i}," + ",".join(str(v) for v in random_row()) + "\n")
    return out.getvalue().encode()


@events.init.add_listener
def _target(environment: Environment, **_: Any) -> None:
    if not environment.host:
        environment.host = os.environ.get("MODELGATE_GATEWAY_URL") or stack_value(
            "MODELGATE_GATEWAY_URL"
        )
    if not environment.host:
        raise SystemExit("no target: pass --host, or run `make up` (writes var/stack.env)")
    # A stale key would make every request a failure: say so once, before the run. A key just
    # created (make load) reaches the gateways within MODELGATE_KEYS_REFRESH_SECONDS: wait for it.
    deadline = time.monotonic() + PREFLIGHT_SECONDS
    while True:
        try:
            answer = requests.get(
                environment.host.rstrip("/") + "/v1/models",
                headers={"X-API-Key": api_key()},
                timeout=5,
            )
        except requests.RequestException as exc:
            raise SystemExit(f"gateway {environment.host} unreachable: {exc}") from None
        if answer.status_code != 401 or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if answer.status_code != 200:
        raise SystemExit(
            f"GET /v1/models with the API key: {answer.status_code} (a key from another Redis? "
            "delete var/load-api-key or set MODELGATE_API_KEY)"
        )


@events.quitting.add_listener
def _summary(environment: Environment, **_: Any) -> None:
    """One line with what a reader looks for first (locust prints its tables after it)."""
    total = environment.stats.total
    if not total.num_requests:
        return
    print(
        f"SUMMARY requests={total.num_requests} "
        f"requests/s={total.total_rps:.1f} "
        f"p50={total.get_response_time_percentile(0.50):.0f}ms "
        f"p95={total.get_response_time_percentile(0.95):.0f}ms "
        f"p99={total.get_response_time_percentile(0.99):.0f}ms "
        f"failures={total.num_failures} ({100 * total.fail_ratio:.2f}%)"
    )


class ModelgateUser(HttpUser):
    """Sends the API key with every request."""

    abstract = True
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.client.headers["X-API-Key"] = api_key()


class PredictUser(ModelgateUser):
    """Sync predictions of 1 to 20 random rows: mostly cache misses."""

    weight = 6

    @task
    def predict(self) -> None:
        rows = [random_row() for _ in range(random.randint(1, 20))]
        self.client.post(f"/v1/models/{MODEL}/predict", json={"instances": rows})


class RepeatUser(ModelgateUser):
    """The same row every time, as the hand-written app's own performance test sent it."""

    weight = 2

    @task
    def predict_same(self) -> None:
        self.client.post(
            f"/v1/models/{MODEL}/predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
            name=f"/v1/models/{MODEL}/predict (same row)",
        )


class LegacyUser(ModelgateUser):
    """The hand-written app's API: `POST /predict` with `{"features": ...}`."""

    weight = 2

    @task
    def predict_legacy(self) -> None:
        self.client.post("/predict", json={"features": [random_row()]})


class JobUser(ModelgateUser):
    """One user at a time submits a CSV batch job, polls it until done and reads the results
    (a key's owner may have only a few jobs running at once)."""

    fixed_count = 1
    wait_time = between(0.5, 1.0)

    @task
    def batch_job(self) -> None:
        with self.client.post(
            f"/v1/models/{MODEL}/jobs",
            params={"id_columns": "rid"},
            data=csv_rows(JOB_ROWS),
            headers={"Content-Type": "text/csv"},
            name=f"/v1/models/{MODEL}/jobs",
            catch_response=True,
        ) as submitted:
            if submitted.status_code != 202:
                submitted.failure(f"status {submitted.status_code}")
                return
            job_id = submitted.json()["job_id"]
        try:
            self._follow(job_id)
        finally:
            if DELETE_JOBS:
                # Done with it, whatever happened: cancel it if it still runs, and free its rows
                # and bytes now rather than at the results' expiry.
                with self.client.delete(
                    f"/v1/jobs/{job_id}", name="/v1/jobs/[id] (delete)", catch_response=True
                ) as deleted:
                    if deleted.status_code != 200:
                        deleted.failure(f"status {deleted.status_code}")

    def _follow(self, job_id: str) -> None:
        """Poll the job until it is done, then read its results and check their lines."""
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while True:
            with self.client.get(
                f"/v1/jobs/{job_id}", name="/v1/jobs/[id]", catch_response=True
            ) as polled:
                status = polled.json().get("status") if polled.status_code == 200 else None
                if status in ("failed", "cancelled") or polled.status_code != 200:
                    polled.failure(f"job {status or polled.status_code}")
                    return
                if status == "succeeded":
                    break
                if time.monotonic() > deadline:
                    polled.failure(f"job not done in {JOB_TIMEOUT_SECONDS:.0f} s")
                    return
            time.sleep(0.25)
        with self.client.get(
            f"/v1/jobs/{job_id}/results",
            headers={"Accept": "text/csv"},
            name="/v1/jobs/[id]/results",
            catch_response=True,
        ) as results:
            lines = results.text.count("\n") if results.status_code == 200 else 0
            if lines != JOB_ROWS + 1:  # the header and one line per row
                results.failure(f"status {results.status_code}, {lines} lines")
