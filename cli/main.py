"""`modelgate`: train, import, list, promote and roll back models in the registry."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from kernel.errors import ModelgateError, RegistryUnavailable
from kernel.settings import STACK_ENV_FILE, RegistrySettings
from registry.aliases import promote, read_history, rollback
from registry.client import Registry, configure_mlflow_http
from registry.digest import DIGEST_TAG
from registry.importer import import_joblib
from registry.onnx_twin import onnx_status
from registry.train import TrainOptions, train_and_register


@click.group()
@click.option(
    "--tracking-uri",
    envvar="MODELGATE_MLFLOW_TRACKING_URI",
    help="MLflow server (default: from the environment, then var/stack.env written by make up).",
)
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None) -> None:
    """Modelgate: serve scikit-learn models from an MLflow registry."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = RegistrySettings(_env_file=STACK_ENV_FILE)  # type: ignore[call-arg]
    if tracking_uri:
        settings = settings.model_copy(update={"mlflow_tracking_uri": tracking_uri})
    configure_mlflow_http(settings)
    ctx.obj = settings


def _registry(ctx: click.Context) -> Registry:
    settings: RegistrySettings = ctx.obj
    return Registry(settings.mlflow_tracking_uri)


def _wait_for(registry: Registry, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            registry.ping()
            return
        except RegistryUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


@main.command()
@click.option("--name", default="iris", show_default=True, help="Registered model name.")
@click.option("--alias", default="production", show_default=True, help="Alias set if unset.")
@click.option("--n-estimators", default=100, show_default=True, type=int)
@click.option("--max-depth", default=3, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--if-missing", is_flag=True, help="Do nothing when the model is registered.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Add a verified ONNX twin.")
@click.option("--wait-seconds", default=0.0, type=float, help="Wait this long for the server.")
@click.pass_context
def train(
    ctx: click.Context,
    name: str,
    alias: str,
    n_estimators: int,
    max_depth: int,
    seed: int,
    if_missing: bool,
    onnx: bool,
    wait_seconds: float,
) -> None:
    """Train SEED.md's iris forest and register it as a new version."""
    registry = _registry(ctx)
    _wait_for(registry, wait_seconds)
    if if_missing and registry.model_exists(name):
        click.echo(f"model '{name}' is already registered; nothing to train")
        return
    options = TrainOptions(n_estimators=n_estimators, max_depth=max_depth, seed=seed)
    published = train_and_register(registry, options, name=name, alias=alias, onnx=onnx)
    click.echo(f"registered {name} version {published.version} (onnx: {published.onnx_status})")
    if published.alias_set:
        click.echo(f"alias {alias} -> version {published.version}")


@main.command(name="import")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Registered model name.")
@click.option(
    "--preprocessor",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A joblib file with a fitted transformer, applied before the model.",
)
@click.option(
    "--sample",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV with a header row, to infer feature names and types.",
)
@click.option("--alias", default="production", show_default=True, help="Alias set if unset.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Add a verified ONNX twin.")
@click.pass_context
def import_(
    ctx: click.Context,
    model_file: Path,
    name: str,
    preprocessor: Path | None,
    sample: Path | None,
    alias: str,
    onnx: bool,
) -> None:
    """Register an existing joblib model (model.pkl) and optional preprocessor."""
    published = import_joblib(
        _registry(ctx),
        model_file,
        name=name,
        preprocessor_path=preprocessor,
        sample_path=sample,
        alias=alias,
        onnx=onnx,
    )
    click.echo(f"registered {name} version {published.version} (onnx: {published.onnx_status})")
    if published.alias_set:
        click.echo(f"alias {alias} -> version {published.version}")


@main.command()
@click.argument("name")
@click.argument("version", type=int)
@click.pass_context
def optimize(ctx: click.Context, name: str, version: int) -> None:
    """Convert a registered version to ONNX, verify it against scikit-learn, keep it if equal."""
    from registry.optimize import optimize_version

    result = optimize_version(_registry(ctx), name, version)
    click.echo(f"{name} version {version}: onnx {result.status}")
    check = result.verification
    if check is not None:
        click.echo(
            f"verified on {check.rows} rows ({check.threshold_rows} on split thresholds): "
            f"{check.label_mismatches} label mismatches, "
            f"largest difference {check.max_abs_diff:.2g}"
        )
    if result.sha256:
        click.echo(f"sha256 {result.sha256}")


@main.command()
@click.argument("name")
@click.pass_context
def versions(ctx: click.Context, name: str) -> None:
    """List a model's versions, their aliases and digests."""
    registry = _registry(ctx)
    by_version: dict[int, list[str]] = {}
    for alias, version in registry.aliases(name).items():
        by_version.setdefault(version, []).append(alias)
    for mv in registry.versions(name):
        number = int(mv.version)
        aliases = ",".join(sorted(by_version.get(number, []))) or "-"
        digest = (mv.tags or {}).get(DIGEST_TAG, "")[:12] or "none"
        click.echo(
            f"{name}\tversion {number}\taliases {aliases}\tsha256 {digest}"
            f"\tonnx {onnx_status(mv)}\trun {mv.run_id}"
        )


@main.command(name="promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.pass_context
def promote_(ctx: click.Context, name: str, version: int, alias: str) -> None:
    """Point an alias at a version; the previous one goes onto the alias history."""
    move = promote(_registry(ctx), name, version, alias)
    click.echo(f"{name}@{alias}: {move.previous or '-'} -> {move.current}")


@main.command(name="rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@click.pass_context
def rollback_(ctx: click.Context, name: str, alias: str) -> None:
    """Point an alias back at the version it had before the last promotion."""
    registry = _registry(ctx)
    move = rollback(registry, name, alias)
    left = len(read_history(registry, name, alias))
    click.echo(f"{name}@{alias}: {move.previous or '-'} -> {move.current} ({left} left in history)")


def run() -> None:
    """Console entry point: typed errors become one line on stderr and exit code 1.

    The `keys` and `jobs` groups are added here, in the one CLI package.
    """
    from cli.jobs import jobs
    from cli.keys import keys

    main.add_command(keys, "keys")
    main.add_command(jobs, "jobs")
    try:
        main(standalone_mode=True)
    except ModelgateError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
