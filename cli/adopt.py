"""`modelgate adopt NAME VERSION`: vouch for a version logged the ordinary MLflow way."""

from __future__ import annotations

import click


@click.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option(
    "--force", is_flag=True, help="Adopt even when the artifact no longer matches its digest."
)
@click.option(
    "--wait",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long to wait for the gateways' verdict on the adopted version (0: do not ask).",
)
@click.pass_context
def adopt(ctx: click.Context, name: str, version: int, force: bool, wait: float) -> None:
    """Record the SHA-256 of a version's artifact as vouched for: strict gateways then serve it,
    and pickle or pyfunc versions load where MODELGATE_ALLOW_PICKLE / _ALLOW_PYFUNC allow.

    The gateways' earlier verdicts on the version are dropped (they judged it untrusted) and
    asked again; a gateway that still refuses it makes the command fail with its reason."""
    from cli.models import _registry
    from registry.adopt import adopt as adopt_version
    from registry.verdicts import VerdictMissing, check_loadable, forget_verdicts

    registry = _registry(ctx)
    adopted = adopt_version(registry, name, version, force=force)
    click.echo(f"{name} version {version}: adopted, sha256 {adopted.digest} (was: {adopted.was})")
    forget_verdicts(registry, name, version)
    if wait <= 0:
        return
    try:
        check_loadable(registry, name, version, False, wait)
    except VerdictMissing:
        click.echo(f"no gateway judged it within {wait:g} s (is one running?)")
        return
    # A refusal (ArtifactRejected, with the gateways' reason) ends the command as an error.
    click.echo("the gateways can load it")
