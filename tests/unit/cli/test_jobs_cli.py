"""`modelgate jobs ...` (cli/jobs.py, over the Python client) against a fake gateway on an httpx
MockTransport.

Every test runs in an empty temporary directory (no var/stack.env, no var/dev-api-key) with
MODELGATE_GATEWAY_URL and MODELGATE_API_KEY unset, unless it writes them itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cli import jobs as jobs_cli
from cli.jobs import jobs
from modelgate_client import Client, Connection
from modelgate_client import client as client_module

JOB_ID = "0123456789abcdef0123456789abcdef"
CSV_RESULTS = b"id,prediction,proba_0,proba_1,proba_2\na,0,0.9,0.05,0.05\nb,2,0.0,0.1,0.9\n"


def status_body(state: str, rows_done: int, rows: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "status": state,
        "model": "iris",
        "version": 3,
        "rows": rows,
        "rows_done": rows_done,
        "progress": rows_done / rows,
        "created": 1_700_000_000.0,
        "started": None,
        "finished": None,
        "id_columns": ["id"],
        **extra,
    }


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": "req-1"}}


@dataclass
class FakeGateway:
    """Answers the job routes from a script; records every request (body read)."""

    statuses: list[dict[str, Any]] = field(default_factory=list)
    results: bytes = CSV_RESULTS
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    streamed_uploads: list[bool] = field(default_factory=list)
    override: Callable[[httpx.Request], httpx.Response | None] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        self.requests.append(request)
        if self.override is not None:
            answer = self.override(request)
            if answer is not None:
                return answer
        path, method = request.url.path, request.method
        if method == "POST" and path.endswith("/jobs"):
            return httpx.Response(
                202,
                json={**status_body("queued", 0), "existing": False},
                headers={"Location": f"/v1/jobs/{JOB_ID}"},
            )
        if method == "GET" and path == f"/v1/jobs/{JOB_ID}":
            body = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            return httpx.Response(200, json=body)
        if method == "GET" and path == f"/v1/jobs/{JOB_ID}/results":
            return httpx.Response(200, content=self.results)
        if method == "DELETE" and path == f"/v1/jobs/{JOB_ID}":
            return httpx.Response(200, json=status_body("cancelled", 1))
        if method == "GET" and path == "/v1/jobs":
            return httpx.Response(200, json={"jobs": [status_body("running", 1)]})
        return httpx.Response(404, json=envelope("not_found", "no such route"))

    def last(self) -> httpx.Request:
        return self.requests[-1]


class StreamCheckingTransport(httpx.MockTransport):
    """Notes whether each request body is still a stream (MockTransport reads it whole)."""

    def __init__(self, fake: FakeGateway) -> None:
        super().__init__(fake)
        self.fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.fake.streamed_uploads.append(not isinstance(request.stream, httpx.ByteStream))
        return super().handle_request(request)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGateway]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELGATE_GATEWAY_URL", raising=False)
    monkeypatch.delenv("MODELGATE_API_KEY", raising=False)
    fake = FakeGateway(statuses=[status_body("succeeded", 2)])
    transport = StreamCheckingTransport(fake)

    def make_client(connection: Connection) -> Client:
        return Client(connection=connection, transport=transport)

    monkeypatch.setattr(jobs_cli, "make_client", make_client)
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    yield fake


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(jobs, list(args), env=env, catch_exceptions=False)


def write_rows(name: str = "rows.csv", text: str = "id,a,b\nx,1,2\ny,3,4\n") -> Path:
    path = Path(name)
    path.write_text(text)
    return path


# -- where to connect --------------------------------------------------------------------


def write_stack_files(url: str = "http://stack-env:18000", key: str = "mg_file_key") -> None:
    Path("var").mkdir(exist_ok=True)
    Path("var/stack.env").write_text(
        "MODELGATE_MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
        "MODELGATE_REDIS_URL=redis://127.0.0.1:6380/0\n"
        f"MODELGATE_GATEWAY_URL={url}\n"
    )
    Path("var/dev-api-key").write_text(key + "\n")


def test_defaults_without_files_or_environment(gateway: FakeGateway) -> None:
    result = run("status", JOB_ID)
    assert result.exit_code == 0, result.output
    request = gateway.last()
    assert str(request.url) == f"http://127.0.0.1:8000/v1/jobs/{JOB_ID}"
    assert "x-api-key" not in request.headers


def test_files_written_by_make_up_are_read(gateway: FakeGateway) -> None:
    write_stack_files()
    assert run("status", JOB_ID).exit_code == 0
    request = gateway.last()
    assert request.url.host == "stack-env" and request.url.port == 18000
    assert request.headers["x-api-key"] == "mg_file_key"  # stripped of its newline


def test_environment_beats_the_files(gateway: FakeGateway) -> None:
    write_stack_files()
    env = {"MODELGATE_GATEWAY_URL": "http://from-env:9000/", "MODELGATE_API_KEY": "mg_env_key"}
    assert run("status", JOB_ID, env=env).exit_code == 0
    request = gateway.last()
    assert str(request.url) == f"http://from-env:9000/v1/jobs/{JOB_ID}"
    assert request.headers["x-api-key"] == "mg_env_key"


@pytest.mark.parametrize("where", ["group", "command"])
def test_options_beat_the_environment_and_the_files(gateway: FakeGateway, where: str) -> None:
    write_stack_files()
    env = {"MODELGATE_GATEWAY_URL": "http://from-env:9000", "MODELGATE_API_KEY": "mg_env_key"}
    options = ["--gateway-url", "http://from-option:7000", "--api-key", "mg_option_key"]
    args = [*options, "status", JOB_ID] if where == "group" else ["status", JOB_ID, *options]
    assert run(*args, env=env).exit_code == 0
    request = gateway.last()
    assert request.url.host == "from-option" and request.url.port == 7000
    assert request.headers["x-api-key"] == "mg_option_key"


def test_the_command_option_beats_the_group_option(gateway: FakeGateway) -> None:
    args = ["--api-key", "mg_group", "status", JOB_ID, "--api-key", "mg_command"]
    assert run(*args).exit_code == 0
    assert gateway.last().headers["x-api-key"] == "mg_command"


def test_empty_environment_values_fall_through_to_the_files(gateway: FakeGateway) -> None:
    write_stack_files()
    result = run("status", JOB_ID, env={"MODELGATE_GATEWAY_URL": "", "MODELGATE_API_KEY": ""})
    assert result.exit_code == 0, result.output
    request = gateway.last()
    assert request.url.host == "stack-env"
    assert request.headers["x-api-key"] == "mg_file_key"


# -- submit --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("rows.csv", "text/csv"),
        ("rows.ndjson", "application/x-ndjson"),
        ("rows.jsonl", "application/x-ndjson"),
        ("rows.json", "application/json"),
        ("ROWS.CSV", "text/csv"),
    ],
)
def test_submit_streams_the_file_with_its_content_type(
    gateway: FakeGateway, name: str, content_type: str
) -> None:
    path = write_rows(name, "some rows\n" * 1000)
    result = run("submit", str(path), "--model", "iris")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{JOB_ID}\n"
    request = gateway.last()
    assert request.method == "POST"
    assert request.url.path == "/v1/models/iris/jobs"
    assert request.headers["content-type"] == content_type
    assert request.headers["content-length"] == str(path.stat().st_size)
    assert gateway.bodies[-1] == path.read_bytes()
    assert gateway.streamed_uploads[-1], "the upload was read whole instead of streamed"
    # The client sets a key of its own, so that its retries never make a second job.
    assert len(request.headers["idempotency-key"]) == 32
    assert "id_columns" not in request.url.params


def test_submit_passes_id_columns_idempotency_key_and_alias(gateway: FakeGateway) -> None:
    path = write_rows()
    result = run(
        "submit",
        str(path),
        "--model",
        "iris@staging",
        "--id-columns",
        " id , region,",
        "--idempotency-key",
        "upload-42",
    )
    assert result.exit_code == 0, result.output
    request = gateway.last()
    assert request.url.path == "/v1/models/iris@staging/jobs"
    assert request.url.params["id_columns"] == "id,region"
    assert request.headers["idempotency-key"] == "upload-42"


def test_submit_refuses_an_unknown_suffix_before_any_request(gateway: FakeGateway) -> None:
    path = write_rows("rows.txt")
    result = run("submit", str(path), "--model", "iris")
    assert result.exit_code == 2
    assert "rows.txt" in result.stderr and ".csv" in result.stderr
    assert gateway.requests == []


def test_submit_refuses_an_unknown_output_suffix_before_uploading(gateway: FakeGateway) -> None:
    result = run("submit", str(write_rows()), "--model", "iris", "--wait", "-o", "out.xlsx")
    assert result.exit_code == 2
    assert gateway.requests == []


def test_wait_polls_then_writes_the_results_file(gateway: FakeGateway) -> None:
    gateway.statuses = [
        status_body("queued", 0),
        status_body("running", 1),
        status_body("succeeded", 2, finished=1_700_000_010.0),
    ]
    result = run("submit", str(write_rows()), "--model", "iris", "--wait", "--id-columns", "id")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{JOB_ID}\n"
    assert Path(f"{JOB_ID}.csv").read_bytes() == CSV_RESULTS  # the default output name
    assert not Path(f"{JOB_ID}.csv.part").exists()
    polls = [r for r in gateway.requests if r.url.path == f"/v1/jobs/{JOB_ID}"]
    assert len(polls) == 3
    download = gateway.last()
    assert download.url.path == f"/v1/jobs/{JOB_ID}/results"
    assert download.headers["accept"] == "text/csv"
    assert "succeeded" in result.stderr and f"{JOB_ID}.csv" in result.stderr


@pytest.mark.parametrize(
    ("name", "accept"),
    [
        ("out.csv", "text/csv"),
        ("out.ndjson", "application/x-ndjson"),
        ("out.jsonl", "application/x-ndjson"),
        ("out.json", "application/json"),
    ],
)
def test_wait_asks_for_the_format_of_the_output_suffix(
    gateway: FakeGateway, name: str, accept: str
) -> None:
    gateway.results = b'{"id": "x", "prediction": 0}\n'
    result = run("submit", str(write_rows()), "--model", "iris", "--wait", "-o", name)
    assert result.exit_code == 0, result.output
    assert gateway.last().headers["accept"] == accept
    assert Path(name).read_bytes() == gateway.results


def test_a_failed_job_exits_1_with_its_error_code(gateway: FakeGateway) -> None:
    gateway.statuses = [
        status_body("running", 1),
        status_body(
            "failed",
            1,
            error={"code": "chunk_crashed", "message": "chunk 0 failed 3 times"},
        ),
    ]
    result = run("submit", str(write_rows()), "--model", "iris", "--wait")
    assert result.exit_code == 1
    assert result.stdout == f"{JOB_ID}\n"  # the id is printed before waiting
    assert result.stderr.splitlines()[-1] == (
        f"error: chunk_crashed: job {JOB_ID} failed: chunk 0 failed 3 times"
    )
    assert "Traceback" not in result.output
    assert not any(r.url.path.endswith("/results") for r in gateway.requests)
    assert not Path(f"{JOB_ID}.csv").exists()


def test_a_cancelled_job_exits_1(gateway: FakeGateway) -> None:
    gateway.statuses = [status_body("cancelled", 1)]
    result = run("submit", str(write_rows()), "--model", "iris", "--wait")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: job_cancelled: ")


# -- errors ----------------------------------------------------------------------------------


def test_an_error_envelope_becomes_one_line_on_stderr(gateway: FakeGateway) -> None:
    gateway.override = lambda request: httpx.Response(
        422, json=envelope("invalid_rows", "row 3, column 'b': not a number")
    )
    result = run("submit", str(write_rows()), "--model", "iris")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: invalid_rows: row 3, column 'b': not a number\n"


@pytest.mark.parametrize(
    "args",
    [["status", JOB_ID], ["cancel", JOB_ID], ["list"], ["results", JOB_ID, "-o", "r.csv"]],
)
def test_every_command_reports_the_envelope(gateway: FakeGateway, args: list[str]) -> None:
    gateway.override = lambda request: httpx.Response(404, json=envelope("job_not_found", "no"))
    result = run(*args)
    assert result.exit_code == 1
    assert result.stderr == "error: job_not_found: no\n"
    assert not Path("r.csv").exists() and not Path("r.csv.part").exists()


def test_retry_after_is_reported(gateway: FakeGateway) -> None:
    gateway.override = lambda request: httpx.Response(
        503,
        json=envelope("queue_unavailable", "the job queue is unavailable; retry shortly"),
        headers={"Retry-After": "5"},
    )
    result = run("submit", str(write_rows()), "--model", "iris")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: queue_unavailable: the job queue is unavailable; retry shortly (retry after 5 s)\n"
    )


def test_an_answer_without_an_envelope_is_one_line_too(gateway: FakeGateway) -> None:
    gateway.override = lambda request: httpx.Response(502, text="<html>Bad Gateway</html>")
    result = run("status", JOB_ID)
    assert result.exit_code == 1
    assert result.stderr == "error: http_502: Bad Gateway\n"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused"), "gateway_unreachable"),
        (httpx.ReadTimeout("slow"), "gateway_timeout"),
    ],
)
def test_connection_errors_are_one_line(
    gateway: FakeGateway, exc: httpx.HTTPError, code: str
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise exc

    gateway.override = broken
    result = run("status", JOB_ID, "--gateway-url", "http://down:1")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {code}: ")
    assert "http://down:1" in result.stderr


# -- the other commands --------------------------------------------------------------------


def test_status_prints_the_json_status(gateway: FakeGateway) -> None:
    gateway.statuses = [status_body("running", 1)]
    result = run("status", JOB_ID)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == status_body("running", 1)


def test_results_streams_to_the_output_file(gateway: FakeGateway) -> None:
    result = run("results", JOB_ID, "-o", "out.csv")
    assert result.exit_code == 0, result.output
    assert Path("out.csv").read_bytes() == CSV_RESULTS
    assert gateway.last().headers["accept"] == "text/csv"


def test_cancel_sends_delete(gateway: FakeGateway) -> None:
    result = run("cancel", JOB_ID)
    assert result.exit_code == 0
    assert gateway.last().method == "DELETE"
    assert result.stdout == f"{JOB_ID} cancelled\n"


@pytest.mark.parametrize(("flag", "params"), [([], {}), (["--all"], {"all": "true"})])
def test_list(gateway: FakeGateway, flag: list[str], params: dict[str, str]) -> None:
    result = run("list", *flag)
    assert result.exit_code == 0, result.output
    assert dict(gateway.last().url.params) == params
    header, row = result.stdout.splitlines()
    # The version is a column of its own: "iris@3" read like an alias.
    assert header.split() == ["JOB", "STATUS", "MODEL", "VERSION", "ROWS", "CREATED"]
    assert row.split()[:5] == [JOB_ID, "running", "iris", "3", "1/2"]
    as_json = run("list", "--json", *flag)
    assert json.loads(as_json.stdout) == {"jobs": [status_body("running", 1)]}
