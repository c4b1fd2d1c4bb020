"""The SHA-256 of an artifact directory (registry/digest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.digest import digest_matches, directory_digest


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.skops").write_bytes(b"\x00\x01weights\xff")
    (root / "sub" / "extra.txt").write_text("hello")
    return root


def test_digest_is_a_sha256_hex_string(artifact: Path) -> None:
    digest = directory_digest(artifact)
    assert len(digest) == 64
    int(digest, 16)


def test_digest_is_stable_across_calls(artifact: Path) -> None:
    assert directory_digest(artifact) == directory_digest(artifact)


def test_digest_is_the_same_for_an_identical_copy(artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    (copy / "sub").mkdir(parents=True)
    # Written in another order, so creation order cannot leak into the digest.
    (copy / "sub" / "extra.txt").write_text("hello")
    (copy / "model.skops").write_bytes(b"\x00\x01weights\xff")
    (copy / "MLmodel").write_text("flavors: {}\n")
    assert directory_digest(copy) == directory_digest(artifact)


def test_digest_changes_when_one_byte_changes(artifact: Path) -> None:
    before = directory_digest(artifact)
    (artifact / "model.skops").write_bytes(b"\x00\x01weights\xfe")
    assert directory_digest(artifact) != before


def test_digest_changes_when_a_file_is_renamed(artifact: Path) -> None:
    before = directory_digest(artifact)
    (artifact / "sub" / "extra.txt").rename(artifact / "sub" / "other.txt")
    assert directory_digest(artifact) != before


def test_digest_changes_when_a_file_moves_to_another_folder(artifact: Path) -> None:
    before = directory_digest(artifact)
    (artifact / "sub" / "extra.txt").rename(artifact / "extra.txt")
    assert directory_digest(artifact) != before


def test_digest_changes_when_a_file_is_added(artifact: Path) -> None:
    before = directory_digest(artifact)
    (artifact / "sub" / "empty").write_bytes(b"")
    assert directory_digest(artifact) != before


def test_digest_matches_the_recorded_digest(artifact: Path) -> None:
    assert digest_matches(artifact, directory_digest(artifact))


def test_digest_does_not_match_after_a_change(artifact: Path) -> None:
    recorded = directory_digest(artifact)
    (artifact / "MLmodel").write_text("flavors: {python_function: {}}\n")
    assert not digest_matches(artifact, recorded)


def test_digest_does_not_match_another_digest(artifact: Path) -> None:
    assert not digest_matches(artifact, "0" * 64)
    assert not digest_matches(artifact, "")
