"""Only types under the allowed module prefixes are trusted when a skops artifact is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from kernel.errors import ArtifactRejected
from kernel.loading import DEFAULT_TRUSTED_PREFIXES
from registry.loader import _deserialise


def _artifact(tmp_path: Path, trusted: list[str], fmt: str = "skops") -> Path:
    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(x, y)
    skops.io.dump(forest, tmp_path / "model.skops")
    flavor = {"pickled_model": "model.skops", "serialization_format": fmt}
    flavor["skops_trusted_types"] = trusted
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavor}}))
    return tmp_path


def test_sklearn_types_load(tmp_path: Path) -> None:
    local = _artifact(tmp_path, ["sklearn.tree._tree.Tree"])
    model = _deserialise(local, False, DEFAULT_TRUSTED_PREFIXES)
    assert type(model).__name__ == "RandomForestClassifier"


def test_an_artifact_asking_to_trust_other_modules_is_refused(tmp_path: Path) -> None:
    local = _artifact(tmp_path, ["sklearn.tree._tree.Tree", "os.system"])
    with pytest.raises(ArtifactRejected, match="outside the allowed modules"):
        _deserialise(local, False, DEFAULT_TRUSTED_PREFIXES)


def test_pickle_needs_the_setting(tmp_path: Path) -> None:
    local = _artifact(tmp_path, [], fmt="pickle")
    with pytest.raises(ArtifactRejected, match="not allowed"):
        _deserialise(local, False, DEFAULT_TRUSTED_PREFIXES)
