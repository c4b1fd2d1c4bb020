"""Promotion and rollback of an alias, with the alias history kept as a registered-model tag.

The history lives in the registry, not on one machine, so rollback works from anywhere and
twice in a row goes back two steps.  MLflow offers no compare-and-set, so two people promoting
the same alias at the same instant can interleave; the last write wins.

With `verdict_wait` (the CLI's `--wait`; None skips the check, as `--force` does), a move first
asks the gateways' load verdicts (registry/verdicts.py) and refuses a version they cannot load,
or one no gateway judged within that many seconds, before the alias is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kernel.errors import AliasHistoryEmpty, AliasNotFound, ArtifactRejected
from registry.client import Registry
from registry.digest import DIGEST_TAG
from registry.verdicts import check_loadable

HISTORY_TAG_PREFIX = "modelgate.alias_history."
#: MLflow tag values are limited in size; the oldest entries are dropped past this many.
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class AliasMove:
    """One change of an alias."""

    name: str
    alias: str
    previous: int | None
    current: int


def history_tag(alias: str) -> str:
    return HISTORY_TAG_PREFIX + alias


def read_history(registry: Registry, name: str, alias: str) -> list[int]:
    raw = (registry.registered_model(name).tags or {}).get(history_tag(alias))
    return parse_history(raw)


def parse_history(raw: str | None) -> list[int]:
    """The stored history, oldest first; anything unreadable counts as empty."""
    if not raw:
        return []
    try:
        values = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(values, list):
        return []
    versions: list[int] = []
    for v in values:
        if type(v) is int and v > 0:
            versions.append(v)
        elif isinstance(v, str) and v.isascii() and v.isdigit() and int(v) > 0:
            versions.append(int(v))
    return versions


def pushed(history: list[int], version: int) -> list[int]:
    return (history + [version])[-HISTORY_LIMIT:]


def promote(
    registry: Registry,
    name: str,
    version: int,
    alias: str = "production",
    *,
    verdict_wait: float | None = None,
) -> AliasMove:
    """Point `alias` at `version`, pushing the version it pointed to onto the history."""
    model_version = registry.version(name, version)
    if not (model_version.tags or {}).get(DIGEST_TAG):
        raise ArtifactRejected(
            f"version {version} of '{name}' has no recorded digest; register it with modelgate"
        )
    try:
        previous: int | None = registry.alias_version(name, alias)
    except AliasNotFound:
        previous = None
    if previous == version:
        return AliasMove(name, alias, previous, version)
    if verdict_wait is not None:
        check_loadable(registry, name, version, force=False, wait=verdict_wait)
    if previous is not None:
        history = pushed(read_history(registry, name, alias), previous)
        registry.set_model_tag(name, history_tag(alias), json.dumps(history))
    registry.set_alias(name, alias, version)
    return AliasMove(name, alias, previous, version)


def rollback(
    registry: Registry,
    name: str,
    alias: str = "production",
    *,
    verdict_wait: float | None = None,
) -> AliasMove:
    """Point `alias` back at the version it had before the last promotion."""
    history = read_history(registry, name, alias)
    if not history:
        raise AliasHistoryEmpty(f"alias '{alias}' of '{name}' has no earlier version")
    target = history[-1]
    try:
        previous: int | None = registry.alias_version(name, alias)
    except AliasNotFound:
        previous = None
    if verdict_wait is not None and previous != target:
        check_loadable(registry, name, target, force=False, wait=verdict_wait)
    registry.set_alias(name, alias, target)
    registry.set_model_tag(name, history_tag(alias), json.dumps(history[:-1]))
    return AliasMove(name, alias, previous, target)
