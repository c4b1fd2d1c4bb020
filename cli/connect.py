"""Where the CLI's gateway commands connect, and the gateway's answers as CLI errors.

gateway   --gateway-url, $MODELGATE_GATEWAY_URL, var/stack.env (make up), http://127.0.0.1:8000
API key   --api-key, $MODELGATE_API_KEY, var/dev-api-key (make up)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import httpx

from kernel.settings import STACK_ENV_FILE

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
DEV_API_KEY_FILE = "var/dev-api-key"
USER_AGENT = "modelgate-jobs-cli"
F = TypeVar("F", bound=Callable[..., Any])
#: Per-operation timeout of a request to the gateway.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


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


# -- answers -----------------------------------------------------------------------------------


def fail(response: httpx.Response) -> NoReturn:
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


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        fail(response)
    try:
        body = response.json()
    except ValueError:
        raise GatewayError("bad_response", "the gateway's answer is not JSON") from None
    if not isinstance(body, dict):
        raise GatewayError("bad_response", "the gateway's answer is not a JSON object")
    return body


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Given on the group or on the command (`jobs --api-key K list`, `jobs list --api-key K`);
    # the one given last, the command's, wins.
    options = ctx.ensure_object(dict)
    if value is not None and param.name is not None:
        options[param.name] = value


def connection_options(command: F) -> F:
    """The --api-key and --gateway-url options, accepted on the group and on each command."""
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


class GatewayGroup(click.Group):
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
