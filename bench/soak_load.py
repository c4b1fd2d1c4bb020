"""The load of `make soak` (bench/soak.py): one thread per kind of client, every outcome recorded.

- sync predictions on each protocol: `/v1/models/iris/predict`, Open Inference V2 REST
  (`/v2/models/iris/infer`), MLflow scoring (`/invocations`) and V2 over gRPC (`ModelInfer`),
  each paced at `rate` requests a second, a new random row each time;
- batch jobs: a CSV job with unique row ids every few seconds, submitted with an
  `Idempotency-Key` and retried with it until a 202 (as a client should across an outage), then
  checked when the run ends: every row exactly once, in order;
- key churn: a key created every 10 s (the Python API over the durable Redis), used until the
  gateway knows it, revoked, and used until the gateway refuses it;
- promotion: `modelgate promote iris 2` and `modelgate rollback iris`, one after the other.

An outcome is (start, end, what, ok, detail); bench/soak.py decides which errors fall in a kill
window.
"""

from __future__ import annotations

import csv
import io
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import httpx
from redis import Redis
from redis.exceptions import RedisError

from gateway.guard.keys import KeyStore
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2_grpc as pb_grpc

MODEL = "iris"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LOW = (4.3, 2.0, 1.0, 0.1)
HIGH = (7.9, 4.4, 6.9, 2.5)
TIMEOUT = 10.0


@dataclass(frozen=True)
class Outcome:
    start: float
    end: float
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Job:
    """A submitted job: its ids, when its 202 came (monotonic) and, once checked, its verdict."""

    job_id: str
    ids: list[str]
    accepted_at: float
    verdict: str = "unchecked"


@dataclass
class Load:
    """Every client thread of a soak, sharing one stop flag and one outcome list."""

    url: str
    grpc_target: str
    api_key: str
    redis_url: str
    key_prefix: str
    #: The `modelgate` command and its environment (the stack's addresses).
    cli: str
    cli_env: dict[str, str]
    rate: float
    outcomes: list[Outcome] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, start: float, what: str, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.outcomes.append(Outcome(start, time.monotonic(), what, ok, detail))

    def threads(self, promote_every: float, job_every: float) -> list[threading.Thread]:
        loops: list[Callable[[], None]] = [
            lambda: self._http_loop("v1", "/v1/models/iris/predict", _v1_body),
            lambda: self._http_loop("v2", "/v2/models/iris/infer", _v2_body),
            lambda: self._http_loop("invocations", "/invocations", _mlflow_body),
            self._grpc_loop,
            lambda: self._job_loop(job_every),
            self._key_churn_loop,
            lambda: self._promotion_loop(promote_every),
        ]
        return [threading.Thread(target=loop, daemon=True) for loop in loops]

    def _paced(self, step: Callable[[], None], every: float) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            step()
            next_at = max(next_at + every, time.monotonic() - every)
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def _http_loop(self, what: str, path: str, body: Callable[[], dict[str, object]]) -> None:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT, trust_env=False) as client:

            def one() -> None:
                start = time.monotonic()
                try:
                    answer = client.post(path, json=body(), headers={"X-API-Key": self.api_key})
                    self.record(start, what, answer.status_code == 200, _said(answer))
                except httpx.HTTPError as exc:
                    self.record(start, what, False, type(exc).__name__)

            self._paced(one, 1 / self.rate)

    def _grpc_loop(self) -> None:
        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            metadata = (("x-api-key", self.api_key),)

            def one() -> None:
                tensor = pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP32", shape=[1, 4]
                )
                tensor.contents.fp32_contents.extend(_row())
                request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
                start = time.monotonic()
                try:
                    stub.ModelInfer(request, timeout=TIMEOUT, metadata=metadata)
                    self.record(start, "grpc", True)
                except grpc.RpcError as exc:
                    self.record(start, "grpc", False, str(exc.code()))

            self._paced(one, 1 / self.rate)

    def _job_loop(self, every: float) -> None:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            self._paced(lambda: self._submit(client), every)

    def _submit(self, client: httpx.Client) -> None:
        n = random.randint(200, 2000)
        tag = uuid.uuid4().hex[:8]
        ids = [f"{tag}-{i}" for i in range(n)]
        body = "id," + ",".join(FEATURES) + "\n"
        body += "".join(f"{i}," + ",".join(map(str, _row())) + "\n" for i in ids)
        headers = {"X-API-Key": self.api_key, "Content-Type": "text/csv", "Idempotency-Key": tag}
        # Retried with the same Idempotency-Key until accepted, as a client does across an outage.
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                answer = client.post(
                    f"/v1/models/{MODEL}/jobs",
                    params={"id_columns": "id"},
                    content=body.encode(),
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                self.record(start, "job submit", False, type(exc).__name__)
            else:
                self.record(start, "job submit", answer.status_code == 202, _said(answer))
                if answer.status_code == 202:
                    with self.lock:
                        self.jobs.append(Job(answer.json()["job_id"], ids, time.monotonic()))
                    return
            self.stop.wait(1.0)

    def _key_churn_loop(self) -> None:
        store = KeyStore(Redis.from_url(self.redis_url, socket_timeout=2), self.key_prefix)
        with httpx.Client(base_url=self.url, timeout=TIMEOUT, trust_env=False) as client:

            def one() -> None:
                start = time.monotonic()
                try:
                    record, value = store.create(name="soak-churn", owner="soak-churn",
                                                 scopes=["predict"])  # fmt: skip
                    known = _until(client, value, "accepted", self.stop)
                    store.revoke(record.id)
                    refused = _until(client, value, "refused", self.stop)
                except (RedisError, httpx.HTTPError) as exc:
                    self.record(start, "key churn", False, type(exc).__name__)
                    return
                self.record(start, "key churn", not (known or refused), known or refused)

            # Each round fails a few authentications (the key not known yet, then revoked): few
            # enough for the throttle of failed authentications (20 a minute by default).
            self._paced(one, 10.0)

    def _promotion_loop(self, every: float) -> None:
        commands = [["promote", MODEL, "2"], ["rollback", MODEL]]
        turn = 0
        while not self.stop.wait(every):
            start = time.monotonic()
            done = subprocess.run(
                [self.cli, *commands[turn % 2], "--wait", "60"],
                env=self.cli_env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
            self.record(start, "promotion", done.returncode == 0, " ".join(tail)[:300])
            turn += done.returncode == 0


def _until(client: httpx.Client, key: str, wanted: str, stop: threading.Event) -> str:
    """'' once a prediction with `key` is `wanted` (`accepted` or `refused`) within 15 s (keys
    reach the gateway within its 2 s refresh); else what it answered last. A refusal is a 401,
    or a 429 `auth_throttled`: the throttle of failed authentications answers only failures."""
    deadline = time.monotonic() + 15
    last = "nothing"
    while time.monotonic() < deadline and not stop.wait(0.5):
        answer = client.post(
            f"/v1/models/{MODEL}/predict", json=_v1_body(), headers={"X-API-Key": key}
        )
        throttled = answer.status_code == 429 and "auth_throttled" in answer.text
        got = {200: "accepted", 401: "refused"}.get(answer.status_code)
        if (got or ("refused" if throttled else None)) == wanted:
            return ""
        last = f"{answer.status_code} {answer.text[:120]}"
    return f"wanted {wanted} within 15 s, got {last}"


def check_job(client: httpx.Client, api_key: str, job: Job, timeout: float) -> str:
    """`exactly once`, or what went wrong: waits for the job to end, then reads its results."""
    headers = {"X-API-Key": api_key}
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/v1/jobs/{job.job_id}", headers=headers)
        if answer.status_code == 404:
            return "vanished (404)"
        status = answer.json().get("status") if answer.status_code == 200 else None
        if status == "succeeded":
            break
        if status in ("failed", "cancelled"):
            return f"{status}: {answer.json().get('error')}"
        if time.monotonic() > deadline:
            return f"not done after {timeout:.0f} s ({status or answer.status_code})"
        time.sleep(0.5)
    results = client.get(
        f"/v1/jobs/{job.job_id}/results", headers={**headers, "Accept": "text/csv"}
    )
    if results.status_code != 200:
        return f"results answered {results.status_code}"
    got = [row["id"] for row in csv.DictReader(io.StringIO(results.text))]
    if got == job.ids:
        return "exactly once"
    missing, extra = len(set(job.ids) - set(got)), len(got) - len(set(got))
    return f"rows wrong: {len(got)} of {len(job.ids)}, {missing} missing, {extra} repeated"


def _said(answer: httpx.Response) -> str:
    return "" if answer.is_success else f"{answer.status_code} {answer.text[:200]}"


def _row() -> list[float]:
    return [round(random.uniform(lo, hi), 2) for lo, hi in zip(LOW, HIGH, strict=True)]


def _v1_body() -> dict[str, object]:
    return {"instances": [_row()]}


def _v2_body() -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": _row()}]}


def _mlflow_body() -> dict[str, object]:
    return {"dataframe_split": {"columns": list(FEATURES), "data": [_row()]}}
