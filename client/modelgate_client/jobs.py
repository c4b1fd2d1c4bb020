"""Batch jobs: the job record, and the plans that submit, poll, cancel and list jobs and open
their results, shared by `Client.jobs` and `AsyncClient.jobs`."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

import httpx

from modelgate_client._wire import (
    Call,
    Plan,
    Sleep,
    Target,
    exchange,
    job_path,
    model_path,
    request_json,
)
from modelgate_client.errors import BadResponse, JobCancelled, JobFailed, WaitTimeout
from modelgate_client.uploads import MEDIA_TYPES, Upload, format_for_path

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
#: The gateway answers a submission once the whole upload is validated and stored.
SUBMIT_READ_TIMEOUT = 600.0


@dataclass(frozen=True)
class Job:
    """A job as the gateway reports it. Times are Unix timestamps (seconds); `error_code` and
    `error_message` are set when it failed; `existing` is true when a submission found the job
    that an earlier one with the same Idempotency-Key made. `raw` is the gateway's JSON."""

    id: str
    status: str
    model: str
    version: int
    rows: int
    rows_done: int
    progress: float
    created: Optional[float] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    deleted: Optional[float] = None
    id_columns: list[str] = field(default_factory=list)
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    existing: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether it finished (succeeded, failed or was cancelled)."""
        return self.status in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """The gateway's JSON for this job (a copy)."""
        return dict(self.raw)


JobRef = Union[str, Job]
#: Pass-through id columns: names, or one comma-separated string.
IdColumns = Union[str, Iterable[str]]
Progress = Callable[[Job], Any]


def job_id_of(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def parse_job(raw: Any) -> Job:
    try:
        error = raw.get("error") or {}
        return Job(
            id=str(raw["job_id"]),
            status=str(raw["status"]),
            model=str(raw.get("model")),
            version=int(raw.get("version") or 0),
            rows=int(raw.get("rows") or 0),
            rows_done=int(raw.get("rows_done") or 0),
            progress=float(raw.get("progress") or 0.0),
            created=raw.get("created"),
            started=raw.get("started"),
            finished=raw.get("finished"),
            deleted=raw.get("deleted"),
            id_columns=list(raw.get("id_columns") or []),
            error_code=error.get("code"),
            error_message=error.get("message"),
            existing=bool(raw.get("existing", False)),
            raw=dict(raw),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise BadResponse("a job in the answer lacks its job_id or status") from None


def submit_call(
    model: str,
    body: Upload,
    id_columns: IdColumns = (),
    idempotency_key: Optional[str] = None,
    timeout: Optional[httpx.Timeout] = None,
) -> Call:
    """The submission of `body`, always with an Idempotency-Key (a new uuid4 unless given),
    so that its retries never make a second job."""
    columns = id_columns.split(",") if isinstance(id_columns, str) else list(id_columns)
    joined = ",".join(c.strip() for c in columns if c and c.strip())
    headers = {
        "Content-Type": body.content_type,
        "Idempotency-Key": idempotency_key or uuid.uuid4().hex,
    }
    if body.size is not None:
        headers["Content-Length"] = str(body.size)
    return Call(
        "POST",
        model_path(model, "/jobs"),
        params={"id_columns": joined} if joined else {},
        headers=headers,
        content=body,
        timeout=timeout,
        idempotent=True,  # the Idempotency-Key makes a repeat find the first job
        retry_codes=frozenset({"idempotency_in_progress"}),
    )


def submit_plan(target: Target, call: Call) -> Plan[Job]:
    return parse_job((yield from request_json(call, target)))


def get_plan(target: Target, job: JobRef) -> Plan[Job]:
    return parse_job((yield from request_json(Call("GET", job_path(job_id_of(job))), target)))


def cancel_plan(target: Target, job: JobRef) -> Plan[Job]:
    call = Call("DELETE", job_path(job_id_of(job)))
    return parse_job((yield from request_json(call, target)))


def list_plan(target: Target, all: bool = False) -> Plan[list[Job]]:
    call = Call("GET", "/v1/jobs", params={"all": "true"} if all else {})
    listed = (yield from request_json(call, target)).get("jobs")
    if not isinstance(listed, list):
        raise BadResponse("the answer to GET /v1/jobs has no 'jobs' list")
    return [parse_job(j) for j in listed]


def outcome(job: Job) -> Job:
    """`job` when it succeeded; JobFailed or JobCancelled otherwise."""
    if job.status == FAILED:
        raise JobFailed(
            f"job {job.id} failed: {job.error_message or 'no reason given'}",
            job,
            code=job.error_code or "job_failed",
        )
    if job.status == CANCELLED:
        raise JobCancelled(f"job {job.id} was cancelled", job)
    return job


def wait_plan(
    target: Target,
    job: JobRef,
    progress: Optional[Progress] = None,
    poll_interval: float = 1.0,
    timeout: Optional[float] = None,
) -> Plan[Job]:
    """Poll until the job finished, calling `progress(job)` after every poll."""
    deadline = None if timeout is None else time.monotonic() + timeout
    current = yield from get_plan(target, job)
    while True:
        if progress is not None:
            progress(current)
        if current.done:
            return outcome(current)
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(
                f"job {current.id} is still {current.status} after {timeout} s", current
            )
        yield Sleep(poll_interval)
        current = yield from get_plan(target, current)


def results_call(job: JobRef, format: str) -> Call:
    """Results in `format`, streamed: the caller reads and closes the answer."""
    accept = {"Accept": MEDIA_TYPES[format]}
    return Call("GET", job_path(job_id_of(job), "/results"), headers=accept, stream=True)


def open_results(target: Target, job: JobRef, format: str = "ndjson") -> Plan[httpx.Response]:
    return (yield from exchange(results_call(job, format), target))


def result_record(line: Union[str, bytes]) -> Optional[dict[str, Any]]:
    """One NDJSON results line as a dict (ids, `prediction`, `probabilities`); None if blank."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        raise BadResponse("a results line is not JSON") from None
    if not isinstance(record, dict):
        raise BadResponse("a results line is not a JSON object")
    return record


def download_format(path: Any, format: Optional[str] = None) -> str:
    """The results format of a download target (by suffix unless given)."""
    return format_for_path(path, format)


@contextlib.contextmanager
def partial_file(path: Union[str, os.PathLike[str]]) -> Iterator[IO[bytes]]:
    """A file written as `<path>.part`, renamed to `path` when the block ends without an
    error, removed otherwise."""
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            yield out
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
