"""Configured models: `name@alias` and `*@alias` specs from MODELGATE_MODELS."""

from __future__ import annotations

from dataclasses import dataclass

#: The name of a pattern entry: `*@production` serves every registered model with that alias.
WILDCARD = "*"


@dataclass(frozen=True)
class ModelSpec:
    """A served model: its registered name and the alias that decides its version; with the
    name `*`, a pattern that stands for every registered model carrying that alias."""

    name: str
    alias: str

    @property
    def is_pattern(self) -> bool:
        return self.name == WILDCARD

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, _, alias = text.strip().partition("@")
        return cls(name=name.strip(), alias=alias.strip() or "production")


def parse_specs(models: str) -> list[ModelSpec]:
    """Parse and check a comma-separated list: at least one entry, each named, no name twice,
    `*` only as a whole name and each pattern's alias once."""
    specs = [ModelSpec.parse(part) for part in models.split(",") if part.strip()]
    if not specs:
        raise ValueError("no model is configured")
    names = [spec.name for spec in specs if not spec.is_pattern]
    if "" in names:
        raise ValueError("a configured model has no name")
    if any(WILDCARD in name for name in names):
        raise ValueError("a pattern is `*@alias`: `*` stands for a whole name, never part of one")
    if len(set(names)) != len(names):
        raise ValueError("a model name is configured twice")
    aliases = pattern_aliases(specs)
    if len(set(aliases)) != len(aliases):
        raise ValueError("a pattern is configured twice")
    return specs


def explicit_specs(specs: list[ModelSpec]) -> list[ModelSpec]:
    """The entries that name one model, in their configured order."""
    return [spec for spec in specs if not spec.is_pattern]


def pattern_aliases(specs: list[ModelSpec]) -> list[str]:
    """The aliases of the `*@alias` entries, in their configured order (the first that a
    registered model carries decides its version)."""
    return [spec.alias for spec in specs if spec.is_pattern]


def default_model(specs: list[ModelSpec], configured: str | None) -> str | None:
    """The model of the legacy routes: `configured` when set, else the first explicit entry;
    None when there is neither (only patterns)."""
    if configured:
        return configured
    named = explicit_specs(specs)
    return named[0].name if named else None
