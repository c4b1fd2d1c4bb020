"""Configured models: `name@alias` specs from MODELGATE_MODELS."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A configured model: its registered name and the alias that decides its version."""

    name: str
    alias: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, _, alias = text.strip().partition("@")
        return cls(name=name.strip(), alias=alias.strip() or "production")


def parse_specs(models: str) -> list[ModelSpec]:
    """Parse and check a comma-separated list: at least one, each named, no name twice."""
    specs = [ModelSpec.parse(part) for part in models.split(",") if part.strip()]
    if not specs:
        raise ValueError("no model is configured")
    names = [spec.name for spec in specs]
    if "" in names:
        raise ValueError("a configured model has no name")
    if len(set(names)) != len(names):
        raise ValueError("a model name is configured twice")
    return specs
