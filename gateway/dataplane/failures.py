"""Why a version did not load, and how long that answer holds.

Three kinds, from the error the registry side raised:

- `refused` (an ArtifactRejected: digest, format, trusted types, a missing extra, pickle): lasting.
  The version is not tried again until its alias moves; a served model with no other version
  answers 503 `model_unavailable` with the reason, and readiness does not wait for it.
- `missing` (no such model, alias or version): tried again every refresh; readiness waits for
  it only while no other model is loaded, so that a typo never takes a serving pod out.
- `transient` (registry outage, failed download): tried again every refresh; readiness waits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.http.errors import ModelUnavailable
from kernel.errors import (
    AliasNotFound,
    ArtifactRejected,
    ModelNotFound,
    RegistryError,
    VersionNotFound,
)
from registry.trust import trust_mark

REFUSED = "refused"
MISSING = "missing"
TRANSIENT = "transient"


def kind_of(exc: RegistryError) -> str:
    if isinstance(exc, ArtifactRejected):
        return REFUSED
    if isinstance(exc, (ModelNotFound, AliasNotFound, VersionNotFound)):
        return MISSING
    return TRANSIENT


@dataclass(frozen=True)
class LoadFailure:
    """The last failure to serve a model's aliased version (`version` None: never resolved)."""

    version: int | None
    kind: str
    code: str
    reason: str

    @property
    def settled(self) -> bool:
        """True when trying again cannot help before the registry changes."""
        return self.kind in (REFUSED, MISSING)

    def describe(self, name: str, alias: str) -> dict[str, Any]:
        return {
            "model": name,
            "alias": alias,
            "version": self.version,
            "kind": self.kind,
            "code": self.code,
            "reason": self.reason,
        }


def next_failure(previous: LoadFailure | None, failure: LoadFailure) -> LoadFailure:
    """The failure to keep: a transient error (an outage) never hides a settled one of the same
    version, or a registry blip would make a ready gateway wait again."""
    if (
        previous is not None
        and previous.settled
        and failure.kind == TRANSIENT
        and failure.version in (None, previous.version)
    ):
        return previous
    return failure


#: A model and a pinned version, or a model and an alias (the unknown aliases remembered).
FailureKey = tuple[str, int | str]


class PinnedFailures:
    """Pinned versions that failed lately, bounded since clients choose the numbers: a refusal
    is remembered until pushed out, anything else for `transient_seconds`."""

    def __init__(self, limit: int, transient_seconds: float) -> None:
        self.limit = limit
        self.transient_seconds = transient_seconds
        self._failed: OrderedDict[FailureKey, tuple[RegistryError, float]] = OrderedDict()

    def holds(self, key: FailureKey) -> RegistryError | None:
        """The remembered failure of `key`, if it still holds."""
        found = self._failed.get(key)
        if found is None:
            return None
        exc, when = found
        if kind_of(exc) == REFUSED or time.monotonic() - when < self.transient_seconds:
            return exc
        del self._failed[key]
        return None

    def check(self, key: FailureKey) -> None:
        """Raise the remembered failure of `key`, if it still holds (a refusal as
        ModelUnavailable, anything else as it was)."""
        exc = self.holds(key)
        if exc is None:
            return
        if kind_of(exc) == REFUSED:
            raise ModelUnavailable(exc.message)
        raise type(exc)(exc.message)

    def check_refused(self, key: FailureKey) -> None:
        """Raise the remembered refusal of `key` as it was (no other failure)."""
        exc = self.holds(key)
        if exc is not None and kind_of(exc) == REFUSED:
            raise type(exc)(exc.message)

    def remember(self, key: FailureKey, exc: RegistryError) -> None:
        self._failed[key] = (exc, time.monotonic())
        self._failed.move_to_end(key)
        while len(self._failed) > self.limit:
            self._failed.popitem(last=False)

    def passing(self, key: FailureKey) -> bool:
        """A passing failure held lately; a refusal is judged again when the CLI asks (`adopt`
        asks once it changed what the version is trusted as)."""
        held = self.holds(key)
        return held is not None and kind_of(held) != REFUSED

    def forget(self, key: FailureKey) -> None:
        self._failed.pop(key, None)

    def forget_model(self, name: str) -> None:
        for key in [k for k in self._failed if k[0] == name]:
            del self._failed[key]


class RefusedTrust:
    """What each refused served version was trusted as when it was refused. A refusal is
    lasting, but `modelgate adopt` (or a digest recorded since) changes the version's trust:
    then it is worth one more load."""

    def __init__(self) -> None:
        self._marks: dict[tuple[str, int], tuple[str | None, str | None]] = {}

    def note(self, key: tuple[str, int], tags: Mapping[str, str]) -> None:
        self._marks[key] = trust_mark(tags)

    def changed(self, key: tuple[str, int], tags: Mapping[str, str]) -> bool:
        mark = trust_mark(tags)
        if self._marks.setdefault(key, mark) == mark:
            return False
        del self._marks[key]
        return True
