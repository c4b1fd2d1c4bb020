"""Fixtures of the client's unit tests: an isolated environment, a scripted fake gateway on an
httpx MockTransport (pure logic only: the live gateway is in tests/integration/test_client.py),
and sleeps that are recorded instead of slept."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelgate_client import AsyncClient, Client, Retry

JOB_ID = "0123456789abcdef0123456789abcdef"
DEFAULT = Retry()
Answer = httpx.Response | Exception


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home, with no MODELGATE_* or XDG variables."""
    import os

    for name in list(os.environ):
        if name.startswith("MODELGATE_") or name == "XDG_CONFIG_HOME":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds each sleep of the clients asked for; nothing is slept."""
    slept: list[float] = []

    async def async_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    return slept


def envelope(status: int, code: str, message: str = "no", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "request_id": "req-body"}}
    return httpx.Response(status, json=body, headers=headers)


def job_body(state: str = "queued", rows_done: int = 0, rows: int = 2, **extra: Any) -> dict:
    return {
        "job_id": JOB_ID,
        "status": state,
        "model": "iris",
        "version": 1,
        "rows": rows,
        "rows_done": rows_done,
        "progress": rows_done / rows if rows else 1.0,
        "created": 1_700_000_000.0,
        "started": None,
        "finished": None,
        "deleted": None,
        "id_columns": [],
        **extra,
    }


@dataclass
class Fake:
    """Answers requests from a script (one answer or a callable per request, in order; the
    last one repeats); records each request and its body."""

    script: list[Answer | Callable[[httpx.Request], Answer]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def _next(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        outcome = step(request) if callable(step) else step
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        return self._next(request)

    async def answer_async(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(await request.aread())
        return self._next(request)

    def client(self, retry: Retry | int | None = DEFAULT, **kw: Any) -> Client:
        return Client(
            "http://gw.test", "k-1", retry=retry, transport=httpx.MockTransport(self.answer), **kw
        )

    def async_client(self, retry: Retry | int | None = DEFAULT, **kw: Any) -> AsyncClient:
        transport = httpx.MockTransport(self.answer_async)
        return AsyncClient("http://gw.test", "k-1", retry=retry, transport=transport, **kw)


@pytest.fixture
def fake(isolated: Path) -> Iterator[Fake]:
    yield Fake()


def ok(document: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(document).encode(), headers=headers)
