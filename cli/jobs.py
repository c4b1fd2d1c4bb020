"""`modelgate jobs ...`: submit, watch, fetch, cancel and list batch jobs over the gateway's API.

An HTTP client of the gateway only (httpx): it never imports the worker or the gateway's
internals, so it works against any gateway it can reach. Uploads and results stream between
the disk and the network; neither is ever read whole into memory.

Where it connects, first match wins:

    gateway   --gateway-url, $MODELGATE_GATEWAY_URL, var/stack.env (make up), http://127.0.0.1:8000
    API key   --api-key, $MODELGATE_API_KEY, var/dev-api-key (make up)
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from cli.connect import (
    GatewayError,
    GatewayGroup,
    build_client,
    checked,
    connection_options,
    fail,
    resolve_api_key,
    resolve_gateway_url,
)

#: Upload Content-Type by the input file's suffix.
UPLOAD_TYPES = {
    ".csv": "text/csv",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
}
#: Results Accept header by the output file's suffix.
RESULT_TYPES = UPLOAD_TYPES
FINISHED = frozenset({"succeeded", "failed", "cancelled"})

#: The submission's answer comes once the whole upload is validated and stored, which takes a
#: while for a million rows.
SUBMIT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=600.0)
DOWNLOAD_BLOCK = 1024 * 1024


@contextlib.contextmanager
def _client() -> Iterator[httpx.Client]:
    options = click.get_current_context().ensure_object(dict)
    base_url = resolve_gateway_url(options.get("gateway_url"))
    options["resolved_url"] = base_url
    with build_client(base_url, resolve_api_key(options.get("api_key"))) as client:
        yield client


def _media_type(path: Path, types: dict[str, str], what: str) -> str:
    media = types.get(path.suffix.lower())
    if media is None:
        suffixes = ", ".join(types)
        raise click.BadParameter(
            f"cannot tell the format of {path.name!r} from its suffix; use one of {suffixes}",
            param_hint=what,
        )
    return media


def _job_path(job_id: str, tail: str = "") -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}{tail}"


def _echo_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, sort_keys=False))


def _download(client: httpx.Client, job_id: str, output: Path) -> int:
    """Stream the results into `output` (via a .part file, renamed when complete); bytes."""
    accept = _media_type(output, RESULT_TYPES, "-o/--output")
    partial = output.with_name(output.name + ".part")
    written = 0
    with client.stream("GET", _job_path(job_id, "/results"), headers={"Accept": accept}) as answer:
        if answer.is_error:
            answer.read()
            fail(answer)
        try:
            with partial.open("wb") as out:
                for block in answer.iter_bytes(DOWNLOAD_BLOCK):
                    out.write(block)
                    written += len(block)
            partial.replace(output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return written


# -- commands ----------------------------------------------------------------------------------


@click.group(cls=GatewayGroup)
@connection_options
def jobs() -> None:
    """Batch prediction jobs: submit a file of rows, watch it, fetch its results."""


@jobs.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Model name, or name@alias (pinned at submission).")
@click.option("--id-columns", default="", help="Comma-separated pass-through id columns.")
@click.option("--idempotency-key", help="Retrying with the same key and file returns the same job.")
@click.option("--wait", is_flag=True, help="Show progress until the job ends; then fetch results.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --wait: results file, format by suffix (default: <job id>.csv).",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between polls with --wait.",
)
@connection_options
def submit(
    file: Path,
    model: str,
    id_columns: str,
    idempotency_key: str | None,
    wait: bool,
    output: Path | None,
    poll_interval: float,
) -> None:
    """Upload FILE (.csv, .ndjson, .jsonl or .json) as a job; print its id."""
    content_type = _media_type(file, UPLOAD_TYPES, "FILE")
    if output is not None:
        if not wait:
            raise click.UsageError("-o/--output needs --wait (or use `modelgate jobs results`)")
        _media_type(output, RESULT_TYPES, "-o/--output")  # refuse before uploading
    headers = {"Content-Type": content_type}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    columns = ",".join(c.strip() for c in id_columns.split(",") if c.strip())
    params = {"id_columns": columns} if columns else {}
    with _client() as client, file.open("rb") as upload:
        job = checked(
            client.post(
                f"/v1/models/{quote(model, safe='@')}/jobs",
                content=upload,  # streamed from disk in blocks, never read whole
                params=params,
                headers=headers,
                timeout=SUBMIT_TIMEOUT,
            )
        )
        job_id = str(job["job_id"])
        click.echo(job_id)
        if not wait:
            return
        try:
            status = _wait(client, job, poll_interval)
        except KeyboardInterrupt:
            click.echo(
                f"\nstopped waiting; the job goes on: modelgate jobs status {job_id}", err=True
            )
            sys.exit(130)
        state = status.get("status")
        if state == "failed":
            error = status.get("error") or {}
            raise GatewayError(
                str(error.get("code") or "job_failed"),
                str(error.get("message") or "the job failed"),
            )
        if state != "succeeded":
            raise GatewayError(f"job_{state}", f"job {job_id} ended {state}")
        target = output or Path(f"{job_id}.csv")
        _download(client, job_id, target)
        click.echo(
            f"job {job_id} succeeded: {status.get('rows')} rows, model {status.get('model')} "
            f"version {status.get('version')}; results in {target}",
            err=True,
        )


def _wait(client: httpx.Client, job: dict[str, Any], poll_interval: float) -> dict[str, Any]:
    """Poll the job with a progress bar over its rows until it is finished; its last status."""
    job_id = str(job["job_id"])
    status = job
    done = 0
    with click.progressbar(
        length=int(job.get("rows") or 0),
        label=f"job {job_id}",
        file=sys.stderr,
        show_pos=True,
    ) as bar:
        while True:
            rows_done = int(status.get("rows_done") or 0)
            if rows_done > done:
                bar.update(rows_done - done)
                done = rows_done
            if status.get("status") in FINISHED:
                return status
            time.sleep(poll_interval)
            status = checked(client.get(_job_path(job_id)))


@jobs.command()
@click.argument("job_id")
@connection_options
def status(job_id: str) -> None:
    """Print the job's status as JSON (rows done, progress, times, error)."""
    with _client() as client:
        _echo_json(checked(client.get(_job_path(job_id))))


@jobs.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, format by suffix: .csv, .ndjson, .jsonl, .json (default: <job id>.csv).",
)
@connection_options
def results(job_id: str, output: Path | None) -> None:
    """Download a succeeded job's results, streamed to disk in input order."""
    target = output or Path(f"{job_id}.csv")
    with _client() as client:
        size = _download(client, job_id, target)
    click.echo(f"wrote {size} bytes to {target}", err=True)


@jobs.command()
@click.argument("job_id")
@connection_options
def cancel(job_id: str) -> None:
    """Cancel a queued or running job and delete its data; a finished job keeps its status and
    its inputs and results are deleted (results then answer 410)."""
    with _client() as client:
        body = checked(client.delete(_job_path(job_id)))
    click.echo(f"{body.get('job_id', job_id)} {body.get('status')}")


def _when(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


@jobs.command(name="list")
@click.option("--all", "all_owners", is_flag=True, help="Every owner's jobs (needs an admin key).")
@click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON answer.")
@connection_options
def list_(all_owners: bool, as_json: bool) -> None:
    """List your jobs, newest first."""
    with _client() as client:
        body = checked(client.get("/v1/jobs", params={"all": "true"} if all_owners else {}))
    if as_json:
        _echo_json(body)
        return
    rows = [
        (
            str(j.get("job_id")),
            str(j.get("status")),
            f"{j.get('model')}@{j.get('version')}",
            f"{j.get('rows_done')}/{j.get('rows')}",
            _when(j.get("created")),
        )
        for j in body.get("jobs", [])
    ]
    header = ("JOB", "STATUS", "MODEL", "ROWS", "CREATED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
