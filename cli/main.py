"""`modelgate`: the one CLI. Registry commands, `keys` (durable Redis) and `jobs` (gateway).

Every subcommand is imported lazily (cli/lazy.py), so `modelgate --help` starts in well under a
second and `modelgate keys list` never imports MLflow or scikit-learn. Where each command
connects is found in one order (cli/endpoints.py): a flag, the environment, var/stack.env found
from the working directory upwards, the user's ~/.config/modelgate/config, then a default.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from cli.errors import CliError
from cli.lazy import LazyGroup

COMMANDS = {
    "models": "cli.models:models",
    "versions": "cli.models:versions",
    "train": "cli.models:train",
    "import": "cli.models:import_",
    "optimize": "cli.models:optimize",
    "adopt": "cli.adopt:adopt",
    "promote": "cli.models:promote_",
    "rollback": "cli.models:rollback_",
    "keys": "cli.keys:keys",
    "jobs": "cli.jobs:jobs",
}


class RootGroup(LazyGroup):
    """A typed error of the stack is one line on stderr, naming where the CLI connected."""

    def invoke(self, ctx: click.Context) -> Any:
        from kernel.errors import ModelgateError, RegistryUnavailable

        try:
            return super().invoke(ctx)
        except RegistryUnavailable as exc:
            where = ctx.ensure_object(dict).get("registry")
            suffix = f": MLflow at {where.describe()}" if where is not None else ""
            raise CliError(exc.code, f"{exc.message}{suffix}") from None
        except ModelgateError as exc:
            raise CliError(exc.code, exc.message) from None


@click.group(cls=RootGroup, lazy=COMMANDS)
@click.option(
    "--tracking-uri",
    metavar="URL",
    help="MLflow server (default: $MODELGATE_MLFLOW_TRACKING_URI, then var/stack.env found "
    "upwards from here, then ~/.config/modelgate/config, then http://127.0.0.1:5000).",
)
@click.version_option(package_name="modelgate", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None) -> None:
    """Modelgate: serve the models of an MLflow registry behind one gateway.

    Registry commands (models, versions, train, import, adopt, optimize, promote, rollback) talk to
    MLflow; `keys` to the durable Redis; `jobs` to the gateway.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A refused or failed request ends the command with one error line naming the address;
    # the retries' warnings before it (urllib3's, under MLflow's client) would only repeat it.
    for name in ("urllib3", "registry.client"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # MLflow's own INFO lines (database migrations, model signature inference) are not the
    # command's output; its "View run" links are, and stay.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    ctx.ensure_object(dict)["tracking_uri"] = tracking_uri


def run() -> None:
    """Console entry point (`modelgate`)."""
    main(prog_name="modelgate")
