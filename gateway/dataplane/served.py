"""Discovery: which registered models the `*@alias` patterns of MODELGATE_MODELS serve.

One scan of the registry (`Registry.registered_models()`, every model with its aliases) gives
both the set of served models and the version each served alias points to now, so following a
model found by a pattern costs no request of its own while its version does not change.

The cap (MODELGATE_MAX_SERVED_MODELS) counts the explicit entries first; the places left go to
the models found by patterns, those already served keeping theirs, then new ones in name order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.dataplane.specs import WILDCARD, ModelSpec


class Registered(Protocol):
    """What a scan reads of a registered model (MLflow's RegisteredModel)."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> Mapping[str, str] | None: ...


@dataclass(frozen=True)
class Scan:
    """What one scan found: the models patterns serve (within the cap), the ones past the cap,
    and the version of every served alias the scan saw (explicit entries too)."""

    served: dict[str, ModelSpec]
    over_cap: tuple[str, ...]
    versions: dict[str, int]


def servable(name: str) -> bool:
    """A name a request can address (`name@alias` splits at the first `@`)."""
    return bool(name) and "@" not in name and name != WILDCARD


def scan(
    models: Iterable[Registered],
    explicit: Mapping[str, ModelSpec],
    patterns: Sequence[str],
    serving: Collection[str],
    cap: int,
) -> Scan:
    """Match the registered `models` against the pattern aliases, in order."""
    aliases: dict[str, dict[str, int]] = {}
    for model in models:
        found = {}
        for alias, version in (model.aliases or {}).items():
            if str(version).isdigit():
                found[alias] = int(version)
        aliases[model.name] = found
    versions = {
        name: aliases[name][spec.alias]
        for name, spec in explicit.items()
        if spec.alias in aliases.get(name, {})
    }
    matched: dict[str, ModelSpec] = {}
    for name in sorted(aliases):
        if name in explicit or not servable(name):
            continue
        carried = [alias for alias in patterns if alias in aliases[name]]
        if carried:
            matched[name] = ModelSpec(name, carried[0])
    places = max(0, cap - len(explicit))
    kept = [name for name in matched if name in serving]
    fresh = [name for name in matched if name not in serving]
    chosen = set((kept + fresh)[:places])
    served = {name: spec for name, spec in matched.items() if name in chosen}
    versions.update({name: aliases[name][spec.alias] for name, spec in served.items()})
    over_cap = tuple(name for name in matched if name not in chosen)
    return Scan(served, over_cap, versions)
