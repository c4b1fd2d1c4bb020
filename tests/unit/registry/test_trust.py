"""Trust on first use and strict mode, on a real artifact directory; the registry's tag writes
are recorded by a fake (pure logic: what is written, and what is refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ArtifactRejected
from kernel.loading import LoadOptions
from registry.digest import DIGEST_TAG, directory_digest
from registry.trust import ADOPTED, FIRST_USE, TRUST_TAG, settle_digest, vouched


class Tags:
    def __init__(self) -> None:
        self.written: dict[str, str] = {}
        self.order: list[str] = []

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.written[key] = value
        self.order.append(key)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "model.ubj").write_bytes(b"\x00model")
    return tmp_path


def _settle(artifact: Path, tags: dict[str, str], trust: str = "first-use") -> tuple[str, Tags]:
    registry = Tags()
    digest = settle_digest(registry, "m", 3, artifact, tags, LoadOptions(trust=trust))  # type: ignore[arg-type]
    return digest, registry


def test_first_use_records_the_digest_and_says_so(artifact: Path) -> None:
    digest, registry = _settle(artifact, {})
    assert digest == directory_digest(artifact)
    assert registry.written == {DIGEST_TAG: digest, TRUST_TAG: FIRST_USE}
    assert not vouched(registry.written)
    # Never a digest without its trust tag, which would read as registered (vouched).
    assert registry.order == [TRUST_TAG, DIGEST_TAG]


def test_later_loads_verify_against_the_recorded_digest(artifact: Path) -> None:
    digest, registry = _settle(artifact, {})
    again, writes = _settle(artifact, dict(registry.written))
    assert again == digest and writes.written == {}
    (artifact / "model.ubj").write_bytes(b"\x00tampered")
    with pytest.raises(ArtifactRejected, match="does not match its recorded SHA-256"):
        _settle(artifact, dict(registry.written))


@pytest.mark.parametrize("tags", [{}, {DIGEST_TAG: "x", TRUST_TAG: FIRST_USE}])
def test_strict_refuses_unvouched_versions_and_names_adopt(
    artifact: Path, tags: dict[str, Any]
) -> None:
    with pytest.raises(ArtifactRejected, match="modelgate adopt m 3"):
        _settle(artifact, tags, trust="strict")


@pytest.mark.parametrize("how", [ADOPTED, None])
def test_strict_serves_adopted_and_registered_versions(artifact: Path, how: str | None) -> None:
    tags = {DIGEST_TAG: directory_digest(artifact)}
    if how:
        tags[TRUST_TAG] = how
    assert vouched(tags)
    digest, registry = _settle(artifact, tags, trust="strict")
    assert digest == tags[DIGEST_TAG] and registry.written == {}
