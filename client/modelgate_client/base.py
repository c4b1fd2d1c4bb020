"""What `Client` and `AsyncClient` share: where they connect, their headers, timeouts and retry
policy, and the request each step of a plan becomes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union

import httpx

from modelgate_client._wire import (
    Call,
    Plan,
    Target,
    base_headers,
    encode_json,
    no_answer,
    request_any,
)
from modelgate_client.config import Connection, find_connection
from modelgate_client.errors import ConnectionFailed
from modelgate_client.jobs import SUBMIT_READ_TIMEOUT
from modelgate_client.retry import Retry, RetryLike, as_retry

TimeoutLike = Union[float, httpx.Timeout, None]
#: Connecting takes at most this long, whatever the timeout of the answer.
CONNECT_TIMEOUT = 5.0


class ClientBase:
    """Resolves the connection (see `modelgate_client.config`) and the policies."""

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: TimeoutLike = 30.0,
        retry: RetryLike = Retry(),  # noqa: B008 - a frozen dataclass, never mutated
        transport: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        connection: Optional[Connection] = None,
    ) -> None:
        #: A `connection` already found (the CLI's, whose sources name its flags) wins over
        #: `url` and `api_key`.
        self.connection: Connection = connection or find_connection(url, api_key)
        self.retry: Retry = as_retry(retry)
        self.timeout = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout, connect=CONNECT_TIMEOUT if timeout else None)
        )
        #: Submissions wait for the whole upload to be validated and stored.
        self._submit_timeout = httpx.Timeout(
            self.timeout.write,
            connect=self.timeout.connect,
            read=None if self.timeout.read is None else max(self.timeout.read, SUBMIT_READ_TIMEOUT),
            pool=self.timeout.pool,
        )
        self._target = Target(self.connection.url, self.connection.url_source, self.retry)
        self.headers = base_headers(self.connection.api_key, headers)
        self._open(transport)

    def _open(self, transport: Any) -> None:
        """Make the httpx client (`self._http`) and `self.jobs`."""
        raise NotImplementedError

    def _run(self, plan: Plan[Any]) -> Any:
        """Run a plan: its result (in AsyncClient, a coroutine of it)."""
        raise NotImplementedError

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, str]] = None,
        json: Any = None,
        content: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Any gateway route, retried per the policy: the decoded JSON answer (None if empty),
        or a typed error. `json` is encoded and sent, else `content`. (Await it in
        AsyncClient.)"""
        sent = dict(headers or {})
        if json is not None:
            content = encode_json(json)
            sent.setdefault("Content-Type", "application/json")
        call = Call(method.upper(), path, params=dict(params or {}), headers=sent, content=content)
        return self._run(request_any(call, self._target))

    @property
    def url(self) -> str:
        """The gateway's URL."""
        return self.connection.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, from {self.connection.url_source})"

    def _build(self, http: Any, call: Call, content: Any) -> httpx.Request:
        """The httpx request of `call` (`content`: its bytes or a fresh pass of its body)."""
        return http.build_request(
            call.method,
            call.path,
            params=dict(call.params) or None,
            headers=dict(call.headers),
            content=content,
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )

    def _broken(self, exc: Exception) -> ConnectionFailed:
        """A connection lost while an answer streamed in."""
        error = no_answer(self._target, exc, while_reading=True)
        error.__cause__ = exc
        return error


def counted(blocks: Iterator[bytes], out: Any) -> int:
    """Write every block to `out`; the bytes written."""
    written = 0
    for block in blocks:
        out.write(block)
        written += len(block)
    return written
