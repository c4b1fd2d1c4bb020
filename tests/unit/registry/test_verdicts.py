"""Load verdicts (registry/verdicts.py) and the verdict-checked alias moves (registry/aliases.py),
against a fake registry that keeps version tags and aliases in dicts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kernel.errors import AliasNotFound, ArtifactRejected
from kernel.loading import LoadOptions
from registry import verdicts
from registry.aliases import promote, rollback
from registry.digest import DIGEST_TAG
from registry.verdicts import (
    REQUEST_TAG,
    VerdictMissing,
    check_loadable,
    fingerprint,
    read_verdicts,
    refusal,
    refused,
    verdict_tag,
    wait_for_verdict,
)


class FakeRegistry:
    """Versions' tags, aliases and model tags; `judge` plays a gateway that answers a request
    after `after` reads of the version."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, int], dict[str, str]] = {}
        self.alias: dict[tuple[str, str], int] = {}
        self.model_tags: dict[tuple[str, str], str] = {}
        self.moves: list[tuple[str, str, int]] = []
        self.judge: tuple[int, str] | None = None
        self.reads = 0
        self.requested = False

    def add(self, name: str, version: int, **tags: str) -> None:
        self.tags[(name, version)] = {DIGEST_TAG: "d" * 64, **tags}

    def version(self, name: str, version: int) -> SimpleNamespace:
        self.reads += 1
        tags = self.tags[(name, version)]
        if self.judge and REQUEST_TAG in tags and self.reads >= self.judge[0]:
            tags[verdict_tag("gw")] = self.judge[1]
        return SimpleNamespace(version=str(version), tags=dict(tags))

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.tags[(name, version)][key] = value
        self.requested = self.requested or key == REQUEST_TAG

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        self.tags[(name, version)].pop(key, None)

    def alias_version(self, name: str, alias: str) -> int:
        if (name, alias) not in self.alias:
            raise AliasNotFound(alias)
        return self.alias[(name, alias)]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.alias[(name, alias)] = version
        self.moves.append((name, alias, version))

    def registered_model(self, name: str) -> SimpleNamespace:
        tags = {k: v for (n, k), v in self.model_tags.items() if n == name}
        return SimpleNamespace(tags=tags)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self.model_tags[(name, key)] = value


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdicts, "POLL_SECONDS", 0.01)


def test_the_fingerprint_follows_what_decides_a_load_only() -> None:
    base = fingerprint(LoadOptions())
    assert base == fingerprint(LoadOptions(work_dir=Path("/tmp/x"), use_twin=False))
    assert base != fingerprint(LoadOptions(allow_pickle=True))
    assert base != fingerprint(LoadOptions(trusted_prefixes=("sklearn.",)))
    assert len(base) == 12 and base == fingerprint(LoadOptions())


def test_a_refusal_is_found_and_the_request_tag_is_no_verdict() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1, **{REQUEST_TAG: "1", verdict_tag("a"): "ok"})
    assert read_verdicts(registry, "m", 1) == {"a": "ok"}
    assert refusal({"a": "ok"}) is None
    assert refusal({"a": "ok", "b": refused("serialization\nformat 'pickle' is not allowed")}) == (
        "serialization format 'pickle' is not allowed"
    )
    assert len(refused("x" * 10_000)) < 600


def test_check_loadable_requests_a_verdict_and_waits_for_it() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1)
    registry.judge = (4, "ok")
    check_loadable(registry, "m", 1, force=False, wait=5)
    # Asked, answered, and the request dropped (gateways search only the newest requests).
    assert registry.requested and REQUEST_TAG not in registry.tags[("m", 1)]
    assert registry.tags[("m", 1)][verdict_tag("gw")] == "ok"


def test_check_loadable_raises_the_gateways_reason() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1)
    registry.judge = (2, refused("serialization format 'cloudpickle' is not allowed"))
    with pytest.raises(ArtifactRejected, match="'cloudpickle' is not allowed"):
        check_loadable(registry, "m", 1, force=False, wait=5)
    check_loadable(registry, "m", 1, force=True, wait=5)  # --force: no question asked


def test_no_verdict_within_the_wait_is_refused_and_says_so() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1)
    assert wait_for_verdict(registry, "m", 1, 0.05) == {}
    with pytest.raises(VerdictMissing, match="within 0.05 s"):
        check_loadable(registry, "m", 1, force=False, wait=0.05)


def test_promote_with_a_refused_version_leaves_the_alias() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1, **{verdict_tag("gw"): "ok"})
    registry.add("m", 2, **{verdict_tag("gw"): refused("does not match its recorded SHA-256")})
    registry.set_alias("m", "production", 1)
    with pytest.raises(ArtifactRejected, match="SHA-256"):
        promote(registry, "m", 2, verdict_wait=1)
    assert registry.alias[("m", "production")] == 1 and len(registry.moves) == 1
    assert promote(registry, "m", 2).current == 2  # without a wait (library use, --force)


def test_rollback_checks_the_version_it_goes_back_to() -> None:
    registry: Any = FakeRegistry()
    registry.add("m", 1, **{verdict_tag("gw"): refused("pickle refused")})
    registry.add("m", 2, **{verdict_tag("gw"): "ok"})
    promote(registry, "m", 1)
    promote(registry, "m", 2, verdict_wait=1)
    with pytest.raises(ArtifactRejected, match="pickle refused"):
        rollback(registry, "m", verdict_wait=1)
    assert registry.alias[("m", "production")] == 2
    assert rollback(registry, "m").current == 1
