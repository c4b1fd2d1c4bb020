"""Registry lookups caused by requests: aliases resolved (and unknown ones remembered), and
whether a pinned version exists, each under the caller's owner budget (budget.py)."""

from __future__ import annotations

import asyncio
import time

from gateway.dataplane.budget import RegistryBudget
from gateway.dataplane.failures import PinnedFailures
from kernel.errors import AliasNotFound, VersionNotFound
from registry.client import Registry


class Lookups:
    """Alias and version lookups for requests, remembered for `remember_seconds`."""

    def __init__(
        self, registry: Registry, remember_seconds: float, limit: int, per_owner: int
    ) -> None:
        self.registry = registry
        self.remember_seconds = remember_seconds
        self.budget = RegistryBudget(per_owner)
        self._alias_seen: dict[tuple[str, str], tuple[int, float]] = {}
        # Unknown aliases, remembered as briefly as unknown versions: a client chooses them.
        self._missing_aliases = PinnedFailures(limit, remember_seconds)

    async def alias_version(self, name: str, alias: str) -> int:
        key = (name, alias)
        seen = self._alias_seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[1] < self.remember_seconds:
            return seen[0]
        self._missing_aliases.check(key)
        with self.budget.spend():
            try:
                version = await asyncio.to_thread(self.registry.alias_version, name, alias)
            except AliasNotFound as exc:
                self._missing_aliases.remember(key, exc)
                raise
        self._alias_seen[key] = (version, now)
        return version

    async def check_version(self, name: str, version: int, failures: PinnedFailures) -> None:
        """Raise VersionNotFound (remembered in `failures`) unless the version exists; asked
        under the owner's budget, before a load slot is taken, so that unknown versions (any
        client can name them) never hold one of those."""
        with self.budget.spend():
            try:
                await asyncio.to_thread(self.registry.version, name, version)
            except VersionNotFound as exc:
                failures.remember((name, version), exc)
                raise

    def forget_model(self, name: str) -> None:
        self._alias_seen = {k: v for k, v in self._alias_seen.items() if k[0] != name}
        self._missing_aliases.forget_model(name)
