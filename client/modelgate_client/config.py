"""Where to connect: any `MODELGATE_*` setting by name, and where its value came from.

First match wins:

1. an explicit value (a constructor argument, a CLI flag);
2. the environment variable of that name;
3. `var/stack.env` in the working directory or the nearest ancestor that has one (written by
   `make up`); for `MODELGATE_API_KEY` also `var/dev-api-key` beside it;
4. the user config file: `$MODELGATE_CONFIG`, else `$XDG_CONFIG_HOME/modelgate/config`, else
   `~/.config/modelgate/config`;
5. the default.

The files are dotenv files: `NAME=value` lines, `#` comments, optional quotes and `export `.
Empty values count as unset. Nothing is cached: every call reads the files again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

GATEWAY_URL = "MODELGATE_GATEWAY_URL"
API_KEY = "MODELGATE_API_KEY"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
STACK_ENV = Path("var", "stack.env")
#: `make up` writes the development key here, beside var/stack.env.
DEV_API_KEY = Path("var", "dev-api-key")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Found:
    """A setting's value (None when nothing set it) and where it came from, for people:
    "argument" (or the flag's name), "$NAME", a file's absolute path, or "default"."""

    value: Optional[str]
    source: str


@dataclass(frozen=True)
class Connection:
    """The gateway's address and the API key, each with where it came from."""

    url: str
    url_source: str
    api_key: Optional[str]
    key_source: str


def read_env_file(path: PathLike) -> dict[str, str]:
    """The `NAME=value` lines of a dotenv file ({} when it cannot be read)."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value may carry a trailing comment
            value = value.split(" #", 1)[0].rstrip()
        values[name.strip()] = value
    return values


def stack_root(cwd: Optional[PathLike] = None) -> Optional[Path]:
    """The working directory or its nearest ancestor that holds `var/stack.env`, if any."""
    start = Path(cwd if cwd is not None else os.getcwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / STACK_ENV).is_file():
            return directory
    return None


def user_config_file() -> Path:
    """`$MODELGATE_CONFIG`, else `$XDG_CONFIG_HOME/modelgate/config`, else
    `~/.config/modelgate/config` (whether or not it exists)."""
    named = os.environ.get("MODELGATE_CONFIG", "").strip()
    if named:
        return Path(named).expanduser().resolve()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return (base / "modelgate" / "config").resolve()


def _first_line(path: Path) -> Optional[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return lines[0].strip() if lines else None


def _set(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    value = value.strip()
    return value or None


def find_setting(
    name: str,
    explicit: Optional[str] = None,
    *,
    default: Optional[str] = None,
    cwd: Optional[PathLike] = None,
    explicit_source: str = "argument",
) -> Found:
    """The setting `name` (e.g. "MODELGATE_GATEWAY_URL") and where it came from, looked up in
    the order of this module's docstring; `explicit_source` names the explicit value's origin
    (e.g. "--gateway-url")."""
    if _set(explicit) is not None:
        return Found(_set(explicit), explicit_source)
    if _set(os.environ.get(name)) is not None:
        return Found(_set(os.environ.get(name)), f"${name}")
    root = stack_root(cwd)
    if root is not None:
        stack_env = root / STACK_ENV
        value = _set(read_env_file(stack_env).get(name))
        if value is not None:
            return Found(value, str(stack_env))
        if name == API_KEY:
            key_file = root / DEV_API_KEY
            value = _set(_first_line(key_file))
            if value is not None:
                return Found(value, str(key_file))
    config = user_config_file()
    value = _set(read_env_file(config).get(name))
    if value is not None:
        return Found(value, str(config))
    return Found(default, "default")


def find_connection(
    url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    cwd: Optional[PathLike] = None,
    url_flag: str = "argument",
    key_flag: str = "argument",
) -> Connection:
    """The gateway URL (without a trailing slash) and the API key, each with its source."""
    found_url = find_setting(
        GATEWAY_URL, url, default=DEFAULT_GATEWAY_URL, cwd=cwd, explicit_source=url_flag
    )
    found_key = find_setting(API_KEY, api_key, cwd=cwd, explicit_source=key_flag)
    address = (found_url.value or DEFAULT_GATEWAY_URL).rstrip("/")
    return Connection(address, found_url.source, found_key.value, found_key.source)
