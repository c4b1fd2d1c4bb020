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
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import click
import httpx

from kernel.settings import STACK_ENV_FILE

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
DEV_API_KEY_FILE = "var/dev-api-key"
USER_AGENT = "modelgate-jobs-cli"

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

#: Per-operation timeouts; the submission's answer comes once the whole upload is validated
#: and stored, which takes a while for a million rows.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
SUBMIT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=600.0)
DOWNLOAD_BLOCK = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


class GatewayError(click.ClickException):
    """One line on stderr, `error: <code>: <message>`, and exit status 1."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def format_message(self) -> str:
        return f"{self.code}: {self.message}"

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# -- where to connect ------------------------------------------------------------------------


def read_env_file(path: str | Path) -> dict[str, str]:
    """`NAME=value` lines of a dotenv file such as var/stack.env ({} when it does not exist)."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def resolve_gateway_url(explicit: str | None) -> str:
    """--gateway-url, else $MODELGATE_GATEWAY_URL, else var/stack.env, else the default."""
    for candidate in (
        explicit,
        os.environ.get("MODELGATE_GATEWAY_URL"),
        read_env_file(STACK_ENV_FILE).get("MODELGATE_GATEWAY_URL"),
    ):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    return DEFAULT_GATEWAY_URL


def resolve_api_key(explicit: str | None) -> str | None:
    """--api-key, else $MODELGATE_API_KEY, else var/dev-api-key, else none (the gateway: 401)."""
    for candidate in (explicit, os.environ.get("MODELGATE_API_KEY")):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        from_file = Path(DEV_API_KEY_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return from_file or None


def build_client(
    base_url: str, api_key: str | None, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The HTTP client of every command (tests replace this to inject a transport)."""
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        headers["X-API-Key"] = api_key
    return httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT, transport=transport)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Given on the group or on the command (`jobs --api-key K list`, `jobs list --api-key K`);
    # the one given last, the command's, wins.
    options = ctx.ensure_object(dict)
    if value is not None and param.name is not None:
        options[param.name] = value


def _connection_options(command: F) -> F:
    command = click.option(
        "--api-key",
        expose_value=False,
        callback=_remember,
        help="API key (default: $MODELGATE_API_KEY, then var/dev-api-key).",
    )(command)
    command = click.option(
        "--gateway-url",
        expose_value=False,
        callback=_remember,
        help="Gateway address (default: $MODELGATE_GATEWAY_URL, then var/stack.env, "
        f"then {DEFAULT_GATEWAY_URL}).",
    )(command)
    return command


@contextlib.contextmanager
def _client() -> Iterator[httpx.Client]:
    options = click.get_current_context().ensure_object(dict)
    base_url = resolve_gateway_url(options.get("gateway_url"))
    options["resolved_url"] = base_url
    with build_client(base_url, resolve_api_key(options.get("api_key"))) as client:
        yield client


# -- answers -----------------------------------------------------------------------------------


def _fail(response: httpx.Response) -> NoReturn:
    """The gateway's error envelope as a GatewayError (the body must have been read)."""
    code, message = f"http_{response.status_code}", response.reason_phrase or "request failed"
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("code"):
            code, message = str(error["code"]), str(error.get("message") or message)
    except (ValueError, AttributeError):
        pass
    retry_after = response.headers.get("retry-after")
    if retry_after and response.status_code in (429, 503):
        message = f"{message} (retry after {retry_after} s)"
    raise GatewayError(code, message)


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        _fail(response)
    try:
        body = response.json()
    except ValueError:
        raise GatewayError("bad_response", "the gateway's answer is not JSON") from None
    if not isinstance(body, dict):
        raise GatewayError("bad_response", "the gateway's answer is not a JSON object")
    return body


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
            _fail(answer)
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


class JobsGroup(click.Group):
    """An unreachable gateway or an unwritable file is one line on stderr, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except httpx.TimeoutException as exc:
            where = ctx.ensure_object(dict).get("resolved_url", "the gateway")
            raise GatewayError(
                "gateway_timeout", f"{where} did not answer in time ({type(exc).__name__})"
            ) from None
        except httpx.InvalidURL:
            where = ctx.ensure_object(dict).get("resolved_url", "")
            raise GatewayError("invalid_gateway_url", f"not a usable address: {where!r}") from None
        except httpx.HTTPError as exc:
            where = ctx.ensure_object(dict).get("resolved_url", "the gateway")
            raise GatewayError(
                "gateway_unreachable", f"cannot reach {where} ({type(exc).__name__})"
            ) from None
        except OSError as exc:
            name = f" {exc.filename}" if exc.filename else ""
            raise GatewayError("io_error", f"{exc.strerror or type(exc).__name__}:{name}") from None


@click.group(cls=JobsGroup)
@_connection_options
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
@_connection_options
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
        job = _checked(
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
            status = _checked(client.get(_job_path(job_id)))


@jobs.command()
@click.argument("job_id")
@_connection_options
def status(job_id: str) -> None:
    """Print the job's status as JSON (rows done, progress, times, error)."""
    with _client() as client:
        _echo_json(_checked(client.get(_job_path(job_id))))


@jobs.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, format by suffix: .csv, .ndjson, .jsonl, .json (default: <job id>.csv).",
)
@_connection_options
def results(job_id: str, output: Path | None) -> None:
    """Download a succeeded job's results, streamed to disk in input order."""
    target = output or Path(f"{job_id}.csv")
    with _client() as client:
        size = _download(client, job_id, target)
    click.echo(f"wrote {size} bytes to {target}", err=True)


@jobs.command()
@click.argument("job_id")
@_connection_options
def cancel(job_id: str) -> None:
    """Cancel a queued or running job (a finished job is left as it is)."""
    with _client() as client:
        body = _checked(client.delete(_job_path(job_id)))
    click.echo(f"{body.get('job_id', job_id)} {body.get('status')}")


def _when(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


@jobs.command(name="list")
@click.option("--all", "all_owners", is_flag=True, help="Every owner's jobs (needs an admin key).")
@click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON answer.")
@_connection_options
def list_(all_owners: bool, as_json: bool) -> None:
    """List your jobs, newest first."""
    with _client() as client:
        body = _checked(client.get("/v1/jobs", params={"all": "true"} if all_owners else {}))
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
