"""`modelgate jobs ...`: submit, watch, fetch, cancel and list batch jobs, over the Python client.

Every request goes through `modelgate_client` (its retries, Idempotency-Key and typed errors);
this module only turns its answers into lines and files. Uploads and results stream between
the disk and the network; neither is ever read whole into memory. Where it connects is
cli/endpoints.py's order, for the gateway's URL and the API key alike.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.errors import CliError
from cli.tables import echo_table
from modelgate_client.config import DEFAULT_GATEWAY_URL

if TYPE_CHECKING:
    from modelgate_client import Client, Connection, Job

F = TypeVar("F", bound=Callable[..., Any])


def make_client(connection: Connection) -> Client:
    """The client of every command (the unit tests give it a transport)."""
    from modelgate_client import Client

    return Client(connection=connection)


@contextlib.contextmanager
def _client() -> Iterator[Client]:
    from modelgate_client import find_connection

    options = click.get_current_context().ensure_object(dict)
    connection = find_connection(
        options.get("gateway_url"),
        options.get("api_key"),
        url_flag="--gateway-url",
        key_flag="--api-key",
    )
    with make_client(connection) as client:
        yield client


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Given on the group or on the command (`jobs --api-key K list`, `jobs list --api-key K`);
    # the one given last, the command's, wins.
    if value is not None and param.name is not None:
        ctx.ensure_object(dict)[param.name] = value


def connection_options(command: F) -> F:
    """--api-key and --gateway-url, accepted on the group and on each command."""
    command = click.option(
        "--api-key",
        expose_value=False,
        callback=_remember,
        help="API key (default: $MODELGATE_API_KEY, then var/dev-api-key beside var/stack.env "
        "found upwards from here, then ~/.config/modelgate/config).",
    )(command)
    return click.option(
        "--gateway-url",
        expose_value=False,
        callback=_remember,
        help="Gateway address (default: $MODELGATE_GATEWAY_URL, then var/stack.env found "
        f"upwards from here, then ~/.config/modelgate/config, then {DEFAULT_GATEWAY_URL}).",
    )(command)


def _suffix(path: Path, what: str) -> None:
    """Refuse, as a usage error, a file whose format the client cannot tell from its suffix."""
    from modelgate_client import UnsupportedFormat, format_for_path

    try:
        format_for_path(path)
    except UnsupportedFormat as exc:
        raise click.BadParameter(exc.message, param_hint=what) from None


class JobsGroup(click.Group):
    """The client's typed errors (the gateway's envelope, an unreachable address naming where
    it came from) and file errors are one line on stderr, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from modelgate_client import ModelgateError

        try:
            return super().invoke(ctx)
        except ModelgateError as exc:
            message = exc.message
            if exc.retry_after is not None and exc.status in (429, 503):
                message = f"{message} (retry after {exc.retry_after:g} s)"
            raise CliError(exc.code, message) from None
        except OSError as exc:
            name = f" {exc.filename}" if exc.filename else ""
            raise CliError("io_error", f"{exc.strerror or type(exc).__name__}:{name}") from None


def _echo_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, sort_keys=False))


# -- commands ----------------------------------------------------------------------------------


@click.group(cls=JobsGroup)
@connection_options
def jobs() -> None:
    """Batch prediction jobs: submit a file of rows, watch it, fetch its results."""


@jobs.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Model name, or name@alias (pinned at submission).")
@click.option("--id-columns", default="", help="Comma-separated pass-through id columns.")
@click.option(
    "--idempotency-key",
    help="Retrying with the same key and file returns the same job (default: a new key, "
    "which the client's own retries reuse).",
)
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
    _suffix(file, "FILE")
    if output is not None:
        if not wait:
            raise click.UsageError("-o/--output needs --wait (or use `modelgate jobs results`)")
        _suffix(output, "-o/--output")  # refused before uploading
    columns = [c.strip() for c in id_columns.split(",") if c.strip()]
    with _client() as client:
        job = client.jobs.submit(model, file, id_columns=columns, idempotency_key=idempotency_key)
        click.echo(job.id)
        if not wait:
            return
        try:
            done = _wait(client, job, poll_interval)
        except KeyboardInterrupt:
            click.echo(
                f"\nstopped waiting; the job goes on: modelgate jobs status {job.id}", err=True
            )
            sys.exit(130)
        target = output or Path(f"{job.id}.csv")
        client.jobs.download(done, target)
        click.echo(
            f"job {job.id} succeeded: {done.rows} rows, model {done.model} version "
            f"{done.version}; results in {target}",
            err=True,
        )


def _wait(client: Client, job: Job, poll_interval: float) -> Job:
    """Poll with a progress bar over the job's rows; the job once it succeeded (the client
    raises JobFailed or JobCancelled otherwise)."""
    with click.progressbar(
        length=job.rows, label=f"job {job.id}", file=sys.stderr, show_pos=True
    ) as bar:
        shown = [0]

        def progress(current: Job) -> None:
            if current.rows_done > shown[0]:
                bar.update(current.rows_done - shown[0])
                shown[0] = current.rows_done

        return client.jobs.wait(job, progress=progress, poll_interval=poll_interval)


@jobs.command()
@click.argument("job_id")
@connection_options
def status(job_id: str) -> None:
    """Print the job's status as JSON (rows done, progress, times, error)."""
    with _client() as client:
        _echo_json(client.jobs.get(job_id).to_dict())


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
    _suffix(target, "-o/--output")
    with _client() as client:
        size = client.jobs.download(job_id, target)
    click.echo(f"wrote {size} bytes to {target}", err=True)


@jobs.command()
@click.argument("job_id")
@connection_options
def cancel(job_id: str) -> None:
    """Cancel a queued or running job and delete its data; a finished job keeps its status and
    its inputs and results are deleted (results then answer 410)."""
    with _client() as client:
        job = client.jobs.cancel(job_id)
    click.echo(f"{job.id} {job.status}")


def _when(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


@jobs.command(name="list")
@click.option("--all", "all_owners", is_flag=True, help="Every owner's jobs (needs an admin key).")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@connection_options
def list_(all_owners: bool, as_json: bool) -> None:
    """List your jobs, newest first."""
    with _client() as client:
        listed = client.jobs.list(all=all_owners)
    if as_json:
        _echo_json({"jobs": [job.to_dict() for job in listed]})
        return
    table = [("JOB", "STATUS", "MODEL", "VERSION", "ROWS", "CREATED")]
    for job in listed:
        table.append(
            (
                job.id,
                job.status,
                job.model,
                str(job.version),
                f"{job.rows_done}/{job.rows}",
                _when(job.created),
            )
        )
    echo_table(table)
