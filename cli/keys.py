"""`modelgate keys ...`: create, import, list and revoke API keys in the durable Redis."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from redis import Redis
from redis.exceptions import RedisError

from gateway.guard.keys import SCOPES, ApiKey, KeyStore
from kernel.settings import STACK_ENV_FILE, SharedSettings


def _store() -> KeyStore:
    settings = SharedSettings(_env_file=STACK_ENV_FILE)  # type: ignore[call-arg]
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return KeyStore(redis, settings.key_prefix)


class KeysGroup(click.Group):
    """Redis being down is one line on stderr, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RedisError as exc:
            message = f"the durable Redis is unreachable ({type(exc).__name__})"
            raise click.ClickException(message) from None


def _key_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options shared by `create` and `import`."""
    for option in reversed(
        [
            click.option("--name", required=True, help="What the key is for (listings, logs)."),
            click.option("--owner", required=True, help="Tenant that owns the key (and its jobs)."),
            click.option(
                "--scopes", default="predict", show_default=True, help=f"Of: {','.join(SCOPES)}."
            ),
            click.option("--predict-limit", help="e.g. 600/minute (default: the gateway's)."),
            click.option("--jobs-limit", help="e.g. 100/hour (default: the gateway's)."),
            click.option("--reads-limit", help="e.g. 6000/minute (default: the gateway's)."),
        ]
    ):
        command = option(command)
    return command


def _store_key(value: str | None, **spec: str | None) -> tuple[ApiKey, str]:
    scopes = [s for s in str(spec.pop("scopes")).split(",") if s.strip()]
    return _store().create(scopes=scopes, value=value, **spec)  # type: ignore[arg-type]


@click.group(cls=KeysGroup)
def keys() -> None:
    """Manage API keys (stored as SHA-256 hashes in the durable Redis)."""


@keys.command()
@_key_options
def create(**spec: str | None) -> None:
    """Create a key and print it once; only its hash is stored."""
    record, value = _store_key(None, **spec)
    click.echo(
        f"created key {record.id} for {record.owner} ({','.join(record.scopes)}); shown once:"
    )
    click.echo(value)


@keys.command(name="import")
@_key_options
def import_(**spec: str | None) -> None:
    """Import an existing key value read from standard input, so its clients keep it."""
    record, _ = _store_key(sys.stdin.readline().strip(), **spec)
    click.echo(f"imported key {record.id} for {record.owner} ({','.join(record.scopes)})")


@keys.command(name="list")
def list_() -> None:
    """List keys: ids, names, owners, scopes, limits; never secrets or hashes."""
    for record in _store().all():
        limits = "/".join(
            str(x or "-") for x in (record.predict_limit, record.jobs_limit, record.reads_limit)
        )
        state = "revoked" if record.revoked else "active"
        click.echo(
            f"{record.id}\t{record.name}\t{record.owner}\t{','.join(record.scopes)}\t"
            f"limits {limits}\t{state}"
        )


@keys.command()
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke a key by id; every gateway refuses it within MODELGATE_KEYS_REFRESH_SECONDS."""
    record = _store().revoke(key_id)
    click.echo(f"revoked key {record.id} ({record.name}, {record.owner})")


@keys.command()
@click.option("--file", "path", type=click.Path(path_type=Path), default=Path("var/dev-api-key"))
@click.option("--wait-seconds", default=0.0, type=float, help="Wait this long for Redis.")
def dev(path: Path, wait_seconds: float) -> None:
    """Make sure a development key with every scope exists; reuse the one in FILE."""
    store = _store()
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            store.redis.ping()
            break
        except RedisError:
            if time.monotonic() >= deadline:
                raise click.ClickException("Redis is not reachable") from None
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
    record, value = store.create(name="dev", owner="dev", scopes=SCOPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    click.echo(f"development key {record.id} written to {path}")
