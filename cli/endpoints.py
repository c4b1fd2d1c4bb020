"""Where the CLI connects, and how it names that place in its errors.

One order for every address and for the API key, first match wins (the Python client's
`modelgate_client.config` implements it, so both find the same stack):

    1. the command's flag (--tracking-uri, --redis-url, --gateway-url, --api-key);
    2. the environment (MODELGATE_MLFLOW_TRACKING_URI, MODELGATE_REDIS_URL, ...);
    3. var/stack.env (written by `make up`) found from the working directory upwards,
       and var/dev-api-key beside it for the key;
    4. the user's config file, ~/.config/modelgate/config ($XDG_CONFIG_HOME, $MODELGATE_CONFIG);
    5. the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import click

#: The defaults of the settings classes (kernel/settings.py), which `make up` also uses.
DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6380/0"

_PASSWORD = re.compile(r"//[^/@]*@")


@dataclass(frozen=True)
class Endpoint:
    """An address and where it came from ("--redis-url", "$MODELGATE_REDIS_URL", a file...)."""

    url: str
    source: str

    def describe(self) -> str:
        """The address, any password masked, and its source: for error messages."""
        return f"{_PASSWORD.sub('//***@', self.url)} (from {self.source})"


def find(name: str, flag: str, explicit: str | None, default: str | None) -> Endpoint | None:
    """The value of setting `name` (MODELGATE_...), the flag `flag` given as `explicit`."""
    from modelgate_client.config import find_setting

    found = find_setting(name, explicit, default=default, explicit_source=flag)
    return None if found.value is None else Endpoint(found.value, found.source)


def setting(name: str, default: str) -> str:
    """A setting with no flag (e.g. MODELGATE_KEY_PREFIX), found in the same order."""
    found = find(name, "", None, default)
    return default if found is None else found.url


def remembered(ctx: click.Context, name: str) -> str | None:
    """A flag given on this command or on any group above it (the innermost wins)."""
    current: click.Context | None = ctx
    while current is not None:
        value = current.params.get(name)
        if value is not None:
            return str(value)
        current = current.parent
    return None


def registry_endpoint(ctx: click.Context) -> Endpoint:
    """The MLflow server, recorded on the root context for error messages."""
    found = find(
        "MODELGATE_MLFLOW_TRACKING_URI",
        "--tracking-uri",
        remembered(ctx, "tracking_uri"),
        DEFAULT_TRACKING_URI,
    )
    assert found is not None  # there is a default
    ctx.find_root().ensure_object(dict)["registry"] = found
    return found


def redis_endpoint(ctx: click.Context) -> Endpoint:
    """The durable Redis that holds the API keys."""
    found = find(
        "MODELGATE_REDIS_URL", "--redis-url", remembered(ctx, "redis_url"), DEFAULT_REDIS_URL
    )
    assert found is not None
    return found
