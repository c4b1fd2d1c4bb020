"""nginx, Debian's package, with the compose config in front of two real gateways.

The server config (`compose/nginx/modelgate.conf`) is used as it is; only the addresses differ:
the port it listens on and the upstream servers (`upstreams.conf`, generated here with the
gateways' ports). While threads POST predictions through nginx:
- requests reach both gateways (each answer's `X-Request-ID` is found in one gateway's log);
- SIGTERM to one gateway: it drains and no request fails (nginx's health checks are passive: it
  learns the gateway is gone when a connection is refused, before anything was sent, and then
  retries on the other one, even a POST);
- SIGKILL to one gateway: only requests in flight at that moment may fail (counted), and every
  request sent after it is gone succeeds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from devstack.processes import Gateway, Service, free_port, http_ok, wait_until
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "compose" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PREDICT = "/v1/models/iris/predict"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
THREADS = 6
#: Test gateways drain for this long (the default, 5 s, would only make the test slower).
DRAIN_SECONDS = "1"

_LISTEN = re.compile(r"^(\s*listen\s+)[^;]+;", re.MULTILINE)
_INCLUDE_UPSTREAMS = re.compile(r"^([^#\n]*\binclude\s+)\S*upstreams\.conf;", re.MULTILINE)
_SERVER = re.compile(r"^(\s*server\s+)(\S+?)((?:\s+[^;]*)?;)", re.MULTILINE)


def main_config(workdir: Path, server: Path, connections: int) -> str:
    """An nginx.conf that runs in the foreground with every file under `workdir` and includes
    the server config at `server`."""
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        # As root, nginx's workers would run as an unprivileged user that cannot write here.
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        + f"error_log {workdir / 'error.log'} info;\n"
        + f"events {{ worker_connections {connections}; }}\n"
        + f"http {{\n    access_log {workdir / 'access.log'};\n{temp}\n"
        + f"    include {server};\n}}\n"
    )


def server_config(source: str, port: int, upstreams: Path) -> str:
    """The compose server config with only its listen address and upstreams include changed
    (a second listen, IPv6 say, is dropped: one address is enough here)."""
    first = _LISTEN.search(source)
    assert first is not None, "modelgate.conf: expected a listen directive"
    head, tail = source[: first.start()], source[first.end() :]
    config = f"{head}{first.group(1)}127.0.0.1:{port};{_LISTEN.sub('', tail)}"
    config, includes = _INCLUDE_UPSTREAMS.subn(rf"\g<1>{upstreams};", config)
    assert includes == 1, "modelgate.conf: expected one include of upstreams.conf"
    return config


def upstreams_config(source: str, gateways: list[Gateway]) -> str:
    """The compose upstreams.conf with its `server` lines replaced by one per gateway (keeping
    the parameters of the first, such as max_fails)."""
    servers = list(_SERVER.finditer(source))
    assert servers, "upstreams.conf: expected server lines"
    first = servers[0]
    lines = "\n".join(
        f"{first.group(1)}127.0.0.1:{gateway.port}{first.group(3)}" for gateway in gateways
    )
    return source[: first.start()] + lines + _SERVER.sub("", source[first.end() :])


class Nginx(Service):
    """`nginx` in the foreground with its pid, logs and temp files in `workdir`."""

    def __init__(self, workdir: Path, gateways: list[Gateway]) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        upstreams = workdir / "upstreams.conf"
        upstreams.write_text(upstreams_config((NGINX_DIR / "upstreams.conf").read_text(), gateways))
        server = workdir / "modelgate.conf"
        server.write_text(
            server_config((NGINX_DIR / "modelgate.conf").read_text(), self.port, upstreams)
        )
        main = workdir / "nginx.conf"
        main.write_text(main_config(workdir, server, connections=1024))
        argv = [NGINX, "-p", str(workdir), "-c", str(main), "-e", str(workdir / "error.log")]
        super().__init__("nginx", argv, workdir / "nginx.out")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        try:
            wait_until(lambda: http_ok(self.url + "/healthz"), 15, "nginx")
        except TimeoutError:
            print(self.log_tail(), self.error_log())
            raise

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def upstream_errors(self) -> dict[str, int]:
        """nginx's [error] lines, counted by what happened ("connect() failed (111: ...")."""
        found = re.findall(r"\[error\] [^*]*\*\d+ (.*?) while ", self.error_log())
        return dict(Counter(found))


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int | str  # the HTTP status, or the name of the client's error
    request_id: str | None  # the one the gateway answered with


class ClientLoop:
    """Threads POSTing predictions through nginx until stopped; every outcome is kept."""

    def __init__(self, url: str, api_key: str, expected: list[int]) -> None:
        self.url = url
        self.api_key = api_key
        self.expected = expected
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(THREADS)]

    def __enter__(self) -> ClientLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, n: int) -> None:
        headers = {"X-API-Key": self.api_key}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                started = time.monotonic()
                try:
                    response = client.post(
                        PREDICT,
                        json={"instances": ROWS},
                        headers={"X-Request-ID": f"c{n}-{i}"},
                    )
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                    self.outcomes.append(Outcome(started, time.monotonic(), error, None))
                    continue
                status: int | str = response.status_code
                if status == 200 and response.json()["predictions"] != self.expected:
                    status = "wrong answer"
                self.outcomes.append(
                    Outcome(started, time.monotonic(), status, response.headers.get("x-request-id"))
                )


def served_ids(gateway: Gateway) -> set[str]:
    """Request ids of the predictions this gateway answered, from its JSON access log."""
    ids = set()
    for line in gateway.log_path.read_text(errors="replace").splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("logger") == "gateway.access" and entry.get("path") == PREDICT:
            ids.add(entry["request_id"])
    return ids


@pytest.fixture
def expected(iris: dict[int, LoadedModel]) -> list[int]:
    return [int(label) for label in iris[1].estimator.predict(np.asarray(ROWS))]


@pytest.fixture
def pair(gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]) -> Iterator[list[Gateway]]:
    first = gateway_factory(drain_seconds=DRAIN_SECONDS, graceful_shutdown_seconds="5")
    second = gateway_factory(
        api_key=first.api_key, drain_seconds=DRAIN_SECONDS, graceful_shutdown_seconds="5"
    )
    yield [first, second]


@pytest.fixture
def nginx(tmp_path: Path, pair: list[Gateway]) -> Iterator[Nginx]:
    if not (NGINX_DIR / "modelgate.conf").is_file():
        pytest.fail(f"{NGINX_DIR}/modelgate.conf is missing")
    server = Nginx(tmp_path / "nginx", pair)
    server.start()
    yield server
    server.stop()


def test_sigterm_to_a_gateway_behind_nginx_fails_no_request(
    nginx: Nginx, pair: list[Gateway], expected: list[int]
) -> None:
    victim, survivor = pair
    assert victim.api_key is not None
    with ClientLoop(nginx.url, victim.api_key, expected) as loop:
        time.sleep(1.5)
        signalled = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        assert victim.proc is not None
        victim.proc.wait(15)
        gone = time.monotonic()
        time.sleep(1.5)
    outcomes = loop.outcomes
    failed = [o for o in outcomes if o.status != 200]
    by_victim, by_survivor = served_ids(victim), served_ids(survivor)
    before = [o for o in outcomes if o.ended < signalled]
    draining = [o for o in outcomes if o.started > signalled and o.request_id in by_victim]
    after = [o for o in outcomes if o.started > gone]
    errors = nginx.upstream_errors()
    print(
        f"\nSIGTERM behind nginx: {len(outcomes)} requests, {len(failed)} failed; before the "
        f"signal {sum(o.request_id in by_victim for o in before)} to the victim and "
        f"{sum(o.request_id in by_survivor for o in before)} to the other; {len(draining)} "
        f"served by the victim while it drained ({gone - signalled:.1f} s until it exited); "
        f"{len(after)} after; nginx's upstream errors: {errors}"
    )
    assert failed == []
    # Both gateways took requests, and every answer came from exactly one of them.
    assert any(o.request_id in by_victim for o in before)
    assert any(o.request_id in by_survivor for o in before)
    assert all((o.request_id in by_victim) != (o.request_id in by_survivor) for o in outcomes)
    # Draining, the victim was not ready but still served; once it was gone, the other did all.
    assert draining
    assert after and all(o.request_id in by_survivor for o in after)


def test_sigkill_to_a_gateway_behind_nginx_fails_only_requests_in_flight(
    nginx: Nginx, pair: list[Gateway], expected: list[int]
) -> None:
    victim, survivor = pair
    assert victim.api_key is not None
    with ClientLoop(nginx.url, victim.api_key, expected) as loop:
        time.sleep(1.5)
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        assert victim.proc is not None
        victim.proc.wait(5)
        gone = time.monotonic()
        time.sleep(1.5)
    outcomes = loop.outcomes
    failed = [o for o in outcomes if o.status != 200]
    errors = nginx.upstream_errors()
    # What nginx logged besides refused connects (always retried): requests the victim held.
    held = sum(n for what, n in errors.items() if not what.startswith("connect() failed"))
    at_kill = [o for o in outcomes if o.started <= killed <= o.ended]
    # SIGKILL is not instant: the kernel tears the process down (its memory first, its sockets
    # last), and nginx keeps sending it requests until its sockets are closed.
    dying = [o for o in outcomes if o.started <= gone and o.ended >= killed]
    after = [o for o in outcomes if o.started > gone]
    print(
        f"\nSIGKILL behind nginx: {len(outcomes)} requests; {len(at_kill)} in flight at the kill "
        f"(to either gateway), {len(dying)} in flight while the victim died "
        f"({1000 * (gone - killed):.0f} ms); {len(failed)} failed (statuses "
        f"{sorted({o.status for o in failed}, key=str)}); {len(after)} sent after it was gone, "
        f"{sum(o.status != 200 for o in after)} failed; nginx's upstream errors: {errors}"
    )
    # Failures are requests the victim held when it died: nginx answers 502 (a POST already
    # sent is not retried elsewhere), or cuts the response short if the victim had begun it.
    # At most one per client, since nginx stops choosing the victim after its first failure;
    # everything sent after it is gone succeeds.
    assert all(o.started <= gone and o.ended >= killed for o in failed)
    assert len(failed) <= THREADS
    assert len(failed) <= held  # each one is an upstream error in nginx's log
    assert all(o.status in (502, "RemoteProtocolError") for o in failed)
    assert after and all(o.status == 200 for o in after)
    assert all(o.request_id in served_ids(survivor) for o in after)
