"""The registry commands: models, versions, train, import, optimize, promote, rollback.

They talk to the MLflow server only. Heavy modules (MLflow, scikit-learn, skops) are imported
inside the commands, so listing them in `modelgate --help` costs nothing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.endpoints import registry_endpoint
from cli.tables import echo_table

if TYPE_CHECKING:
    from registry.client import Registry

T = TypeVar("T")


def _registry(ctx: click.Context) -> Registry:
    from kernel.settings import RegistrySettings
    from registry.client import Registry, configure_mlflow_http

    where = registry_endpoint(ctx)
    settings = RegistrySettings(mlflow_tracking_uri=where.url)
    configure_mlflow_http(settings)
    return Registry(settings.mlflow_tracking_uri)


def _wait_for(ctx: click.Context, seconds: float) -> None:
    """Wait until the MLflow server answers its /health, quietly: `make up` starts it beside
    this command, and MLflow's own retries would print a warning per refused connection."""
    where = registry_endpoint(ctx)
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{where.url.rstrip('/')}/health", timeout=2):
                return
        except (OSError, urllib.error.URLError, ValueError):
            if time.monotonic() >= deadline:
                return  # the command's first request then fails with a typed, named error
            time.sleep(0.5)


def _published(name: str, alias: str, version: int, onnx_status: str, alias_set: bool) -> None:
    click.echo(f"registered {name} version {version} (onnx: {onnx_status})")
    if alias_set:
        click.echo(f"alias {alias} -> version {version}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the registered models: their aliases, latest version and number of versions."""
    registry = _registry(ctx)
    rows: list[dict[str, Any]] = []
    for model in registry.registered_models():
        aliases = {alias: int(v) for alias, v in sorted((model.aliases or {}).items())}
        numbers = [int(v.version) for v in model.latest_versions or []]
        latest = max(numbers) if numbers else None
        rows.append({"name": model.name, "latest_version": latest, "aliases": aliases})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("MODEL", "LATEST", "ALIASES")]
    for row in rows:
        named = ", ".join(f"{a} -> v{v}" for a, v in row["aliases"].items()) or "-"
        shown = "-" if row["latest_version"] is None else f"v{row['latest_version']}"
        table.append((str(row["name"]), shown, named))
    echo_table(table)


@click.command()
@click.argument("name")
@click.pass_context
def versions(ctx: click.Context, name: str) -> None:
    """List a model's versions, their aliases, digests and ONNX twins."""
    from registry.digest import DIGEST_TAG
    from registry.onnx_twin import onnx_status

    registry = _registry(ctx)
    by_version: dict[int, list[str]] = {}
    for alias, version in registry.aliases(name).items():
        by_version.setdefault(version, []).append(alias)
    table = [("MODEL", "VERSION", "ALIASES", "SHA256", "ONNX", "RUN")]
    for mv in registry.versions(name):
        number = int(mv.version)
        aliases = ",".join(sorted(by_version.get(number, []))) or "-"
        digest = (mv.tags or {}).get(DIGEST_TAG, "")[:12] or "none"
        table.append((name, str(number), aliases, digest, onnx_status(mv), str(mv.run_id)))
    echo_table(table)


@click.command()
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
    """Train the demo iris forest (the legacy app's model) and register it as a new version."""
    from registry.train import TrainOptions, train_and_register

    if wait_seconds > 0:
        _wait_for(ctx, wait_seconds)
    registry = _registry(ctx)
    if if_missing and registry.model_exists(name):
        click.echo(f"model '{name}' is already registered; nothing to train")
        return
    options = TrainOptions(n_estimators=n_estimators, max_depth=max_depth, seed=seed)
    published = train_and_register(registry, options, name=name, alias=alias, onnx=onnx)
    _published(name, alias, published.version, published.onnx_status, published.alias_set)


#: Seconds import, promote and rollback wait for the gateways' load verdict by default.
DEFAULT_VERDICT_WAIT = 30.0

_wait_option = click.option(
    "--wait",
    "wait",
    default=DEFAULT_VERDICT_WAIT,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long to wait for the gateways' verdict on a version none has tried yet.",
)
_force_option = click.option(
    "--force", is_flag=True, help="Move the alias even if the gateways refuse the version."
)


@click.command(name="import")
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
    help="A CSV with a header row, to infer feature names and types "
    "(required for XGBoost, LightGBM and CatBoost files).",
)
@click.option("--alias", default="production", show_default=True, help="Alias set if unset.")
@click.option(
    "--onnx/--no-onnx",
    default=True,
    show_default=True,
    help="Add a verified ONNX twin (joblib models).",
)
@_wait_option
@_force_option
@click.pass_context
def import_(
    ctx: click.Context,
    model_file: Path,
    name: str,
    preprocessor: Path | None,
    sample: Path | None,
    alias: str,
    onnx: bool,
    wait: float,
    force: bool,
) -> None:
    """Register an existing model file as a new version.

    MODEL_FILE is an XGBoost `.json`/`.ubj`, a LightGBM `.txt` or a CatBoost `.cbm` file
    (with --sample), or else a joblib model (model.pkl) with an optional preprocessor.
    """
    from registry.importer import import_model
    from registry.verdicts import set_alias_if_loadable

    registry = _registry(ctx)
    # Registered first, without the alias: the alias (when unset) is set only once the
    # gateways' verdict says they can load the new version, as promote does.
    published = import_model(
        registry,
        model_file,
        name=name,
        preprocessor_path=preprocessor,
        sample_path=sample,
        alias=None,
        onnx=onnx,
    )
    _published(name, alias, published.version, published.onnx_status, False)
    # Importing again would register another version: the way past is promote.
    past = f"`modelgate promote {name} {published.version} --alias {alias}` sets it, --force too"
    alias_set = _moved(
        alias,
        lambda: set_alias_if_loadable(
            registry, name, alias, published.version, None if force else wait
        ),
        past,
    )
    if alias_set:
        click.echo(f"alias {alias} -> version {published.version}")


@click.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Convert and verify again a version already verified.")
@click.pass_context
def optimize(ctx: click.Context, name: str, version: int, force: bool) -> None:
    """Convert a registered version to ONNX, verify it against scikit-learn, keep it if equal."""
    from kernel.loading import LoadOptions
    from kernel.settings import SharedSettings
    from registry.optimize import optimize_version

    # The loader policy of this environment's MODELGATE_* settings (trust, pickle, pyfunc),
    # as the services read theirs: optimize loads the version as they would.
    options = LoadOptions.from_settings(SharedSettings())
    result = optimize_version(_registry(ctx), name, version, options=options, force=force)
    if result.kept:
        click.echo(
            f"{name} version {version}: onnx already verified (sha256 {result.sha256}); "
            "nothing redone (--force converts and verifies again)"
        )
        return
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


def _moved(alias: str, move: Callable[[], T], way_past: str | None = None) -> T:
    """Run a verdict-checked alias move; a refusal or a missing verdict leaves the alias as it
    was and says so, with the way past it (`way_past`, else the command's own flags)."""
    from cli.errors import CliError
    from kernel.errors import ArtifactRejected
    from registry.verdicts import VerdictMissing

    try:
        return move()
    except ArtifactRejected as exc:
        hint = f"; alias '{alias}' unchanged ({way_past or '--force moves it anyway'})"
        raise CliError(exc.code, exc.message + hint) from None
    except VerdictMissing as exc:
        flags = "--wait SECONDS waits longer, --force moves it"
        hint = f"; alias '{alias}' unchanged ({way_past or flags})"
        raise CliError(exc.code, exc.message + hint) from None


@click.command(name="promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@_wait_option
@_force_option
@click.pass_context
def promote_(
    ctx: click.Context, name: str, version: int, alias: str, wait: float, force: bool
) -> None:
    """Point an alias at a version; the previous one goes onto the alias history.

    The version must be one the gateways can load: their recorded verdict is read first (a
    version none has tried is requested and waited for, --wait), and a refusal leaves the alias
    unchanged unless --force."""
    from registry.aliases import promote

    registry = _registry(ctx)
    verdict_wait = None if force else wait
    move = _moved(alias, lambda: promote(registry, name, version, alias, verdict_wait=verdict_wait))
    click.echo(f"{name}@{alias}: {move.previous or '-'} -> {move.current}")


@click.command(name="rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@_wait_option
@_force_option
@click.pass_context
def rollback_(ctx: click.Context, name: str, alias: str, wait: float, force: bool) -> None:
    """Point an alias back at the version it had before the last promotion (checked against
    the gateways' verdict as promote is, unless --force)."""
    from registry.aliases import read_history, rollback

    registry = _registry(ctx)
    verdict_wait = None if force else wait
    move = _moved(alias, lambda: rollback(registry, name, alias, verdict_wait=verdict_wait))
    left = len(read_history(registry, name, alias))
    click.echo(f"{name}@{alias}: {move.previous or '-'} -> {move.current} ({left} left in history)")
