"""`modelgate keys ...`: create, import, list and revoke API keys in the durable Redis.

Redis and the key store are imported inside the commands: `modelgate --help` lists this group
without loading them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.endpoints import Endpoint, redis_endpoint, setting
from cli.errors import CliError
from cli.tables import echo_table

if TYPE_CHECKING:
    from gateway.guard.keys import ApiKey, KeyStore

#: The scopes a key can have (gateway/guard/keys.py SCOPES, kept importable without Redis).
SCOPE_NAMES = "predict,jobs,admin"


def _store(ctx: click.Context) -> KeyStore:
    from redis import Redis

    from gateway.guard.keys import KeyStore
    from kernel.settings import SharedSettings

    where = redis_endpoint(ctx)
    ctx.find_root().ensure_object(dict)["redis"] = where
    prefix = setting("MODELGATE_KEY_PREFIX", SharedSettings.model_fields["key_prefix"].default)
    settings = SharedSettings(redis_url=where.url, key_prefix=prefix)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return KeyStore(redis, settings.key_prefix)


class KeysGroup(click.Group):
    """Redis being down is one line on stderr naming the address, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from redis.exceptions import RedisError

        try:
            return super().invoke(ctx)
        except RedisError as exc:
            where: Endpoint | None = ctx.find_root().ensure_object(dict).get("redis")
            place = where.describe() if where is not None else "the durable Redis"
            message = f"cannot use the durable Redis at {place}: {exc}"
            raise CliError("redis_unavailable", message) from None


def _key_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options shared by `create` and `import`."""
    for option in reversed(
        [
            click.option("--name", required=True, help="What the key is for (listings, logs)."),
            click.option("--owner", required=True, help="Tenant that owns the key (and its jobs)."),
            click.option(
                "--scopes", default="predict", show_default=True, help=f"Of: {SCOPE_NAMES}."
            ),
            click.option("--predict-limit", help="e.g. 600/minute (default: the gateway's)."),
            click.option("--jobs-limit", help="e.g. 100/hour (default: the gateway's)."),
            click.option("--reads-limit", help="e.g. 6000/minute (default: the gateway's)."),
        ]
    ):
        command = option(command)
    return command


def _store_key(ctx: click.Context, value: str | None, **spec: str | None) -> tuple[ApiKey, str]:
    scopes = [s for s in str(spec.pop("scopes")).split(",") if s.strip()]
    return _store(ctx).create(scopes=scopes, value=value, **spec)  # type: ignore[arg-type]


@click.group(cls=KeysGroup)
@click.option(
    "--redis-url",
    metavar="URL",
    help="The durable Redis (default: $MODELGATE_REDIS_URL, then var/stack.env found upwards "
    "from here, then ~/.config/modelgate/config, then redis://127.0.0.1:6380/0).",
)
def keys(redis_url: str | None) -> None:
    """Manage API keys (stored as SHA-256 hashes in the durable Redis)."""


@keys.command()
@_key_options
@click.pass_context
def create(ctx: click.Context, **spec: str | None) -> None:
    """Create a key and print it once; only its hash is stored."""
    record, value = _store_key(ctx, None, **spec)
    click.echo(
        f"created key {record.id} for {record.owner} ({','.join(record.scopes)}); shown once:"
    )
    click.echo(value)


@keys.command(name="import")
@_key_options
@click.pass_context
def import_(ctx: click.Context, **spec: str | None) -> None:
    """Import an existing key value read from standard input, so its clients keep it."""
    record, _ = _store_key(ctx, sys.stdin.readline().strip(), **spec)
    click.echo(f"imported key {record.id} for {record.owner} ({','.join(record.scopes)})")


@keys.command(name="list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List keys: ids, names, owners, scopes, limits; never secrets or hashes.

    A limit shown as `default` is the gateway's (MODELGATE_DEFAULT_*_LIMIT)."""
    table: list[tuple[str, ...]] = [
        ("ID", "NAME", "OWNER", "SCOPES", "PREDICT", "JOBS", "READS", "STATE")
    ]
    for record in _store(ctx).all():
        limits = (record.predict_limit, record.jobs_limit, record.reads_limit)
        table.append(
            (
                record.id,
                record.name,
                record.owner,
                ",".join(record.scopes),
                *(str(limit or "default") for limit in limits),
                "revoked" if record.revoked else "active",
            )
        )
    echo_table(table)


@keys.command()
@click.argument("key_id")
@click.pass_context
def revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by id; every gateway refuses it within MODELGATE_KEYS_REFRESH_SECONDS."""
    record = _store(ctx).revoke(key_id)
    click.echo(f"revoked key {record.id} ({record.name}, {record.owner})")


@keys.command()
@click.option("--file", "path", type=click.Path(path_type=Path), default=Path("var/dev-api-key"))
@click.option("--wait-seconds", default=0.0, type=float, help="Wait this long for Redis.")
@click.pass_context
def dev(ctx: click.Context, path: Path, wait_seconds: float) -> None:
    """Make sure a development key with every scope exists; reuse the one in FILE."""
    from redis.exceptions import RedisError

    from gateway.guard.keys import SCOPES

    store = _store(ctx)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            store.redis.ping()
            break
        except RedisError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    value = path.read_text().strip() if path.is_file() else ""
    if value:
        found = store.find_by_value(value)
        if found is not None and not found.revoked:
            click.echo(f"development key {found.id} reused from {path}")
            return
        if found is None:  # Redis lost it (var/redis deleted): store the same key again
            record, _ = store.create(name="dev", owner="dev", scopes=SCOPES, value=value)
            click.echo(f"development key from {path} stored again as {record.id}")
            return
        # A revoked key stays revoked: a fresh one replaces it below.
    record, value = store.create(name="dev", owner="dev", scopes=SCOPES, value=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    click.echo(f"development key {record.id} written to {path}")
