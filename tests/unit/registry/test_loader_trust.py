"""What a verified artifact may deserialise: skops types the settings trust, pickle only when
allowed and vouched for, pyfunc only when allowed, each flavor's classes only from its package."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import skops.io
import yaml
from pydantic import ValidationError
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from kernel.errors import ArtifactRejected
from kernel.loading import LoadOptions
from kernel.settings import SharedSettings
from registry.flavors import choose_flavor, load_native, read_flavors


def _forest() -> RandomForestClassifier:
    x, y = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(x, y)


def _artifact(tmp_path: Path, trusted: list[str], fmt: str = "skops") -> Path:
    if fmt == "skops":
        skops.io.dump(_forest(), tmp_path / "model.bin")
    else:
        (tmp_path / "model.bin").write_bytes(pickle.dumps(_forest()))
    flavor: dict[str, Any] = {"pickled_model": "model.bin", "serialization_format": fmt}
    flavor["skops_trusted_types"] = trusted
    flavors = {"sklearn": flavor, "python_function": {"loader_module": "mlflow.sklearn"}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    return tmp_path


def _load(local: Path, options: LoadOptions, vouched: bool = False) -> Any:
    flavors = read_flavors(local)
    return load_native(local, flavors, choose_flavor(flavors, options), options, vouched)


def test_sklearn_types_load(tmp_path: Path) -> None:
    native = _load(_artifact(tmp_path, ["sklearn.tree._tree.Tree"]), LoadOptions())
    assert native.model_type == "RandomForestClassifier" and native.flavor == "sklearn"


def test_an_artifact_asking_to_trust_other_modules_is_refused(tmp_path: Path) -> None:
    local = _artifact(tmp_path, ["sklearn.tree._tree.Tree", "os.system"])
    with pytest.raises(ArtifactRejected, match="outside the allowed modules"):
        _load(local, LoadOptions())


def test_standard_library_types_are_trusted_by_exact_name_only(tmp_path: Path) -> None:
    options = LoadOptions()
    assert options.trusts_type("collections.OrderedDict")
    assert not options.trusts_type("collections.Counter")
    assert options.trusts_type("lightgbm.basic.Booster") and options.trusts_type("xgboost.Xy")
    local = _artifact(tmp_path, ["sklearn.tree._tree.Tree", "collections.Counter"])
    with pytest.raises(ArtifactRejected, match="outside the allowed modules"):
        _load(local, options)


@pytest.mark.parametrize("prefixes", ["collections.", "sklearn.,builtins.", "os", ".x"])
def test_a_standard_library_prefix_is_refused_by_the_settings(prefixes: str) -> None:
    with pytest.raises(ValidationError, match="MODELGATE_TRUSTED_TYPES|standard-library"):
        SharedSettings(trusted_type_prefixes=prefixes)


def test_pickle_needs_the_setting_and_names_it(tmp_path: Path) -> None:
    local = _artifact(tmp_path, [], fmt="cloudpickle")
    with pytest.raises(ArtifactRejected, match="MODELGATE_ALLOW_PICKLE=true.*modelgate adopt"):
        _load(local, LoadOptions(), vouched=True)


def test_pickle_is_never_trusted_on_first_use(tmp_path: Path) -> None:
    local = _artifact(tmp_path, [], fmt="pickle")
    with pytest.raises(ArtifactRejected, match="never trusted on first use"):
        _load(local, LoadOptions(allow_pickle=True), vouched=False)
    native = _load(local, LoadOptions(allow_pickle=True), vouched=True)
    assert native.model_type == "RandomForestClassifier"


def test_only_pyfunc_is_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {"python_function": {"loader_module": "x"}}})
    )
    flavors = read_flavors(tmp_path)
    with pytest.raises(ArtifactRejected, match="MODELGATE_ALLOW_PYFUNC=true"):
        choose_flavor(flavors, LoadOptions())
    assert choose_flavor(flavors, LoadOptions(allow_pyfunc=True)) == "python_function"
    with pytest.raises(ArtifactRejected, match="never trusted on first use"):
        load_native(tmp_path, flavors, "python_function", LoadOptions(allow_pyfunc=True), False)


def test_native_flavors_come_before_pyfunc_and_unknown_ones_are_named(tmp_path: Path) -> None:
    both = {"python_function": {}, "lightgbm": {"data": "m"}, "xgboost": {"data": "m"}}
    assert choose_flavor(both, LoadOptions()) == "xgboost"
    with pytest.raises(ArtifactRejected, match="keras, onnx"):
        choose_flavor({"keras": {}, "onnx": {}}, LoadOptions(allow_pyfunc=True))


@pytest.mark.parametrize("named", ["os.system", "xgboost.dask.DaskXGBClassifier"])
def test_a_flavor_class_other_than_the_logged_ones_is_refused(tmp_path: Path, named: str) -> None:
    flavors = {"xgboost": {"data": "model.json", "model_class": named}}
    with pytest.raises(ArtifactRejected, match="unsupported class"):
        load_native(tmp_path, flavors, "xgboost", LoadOptions(), False)
    lgb = {"lightgbm": {"data": "m", "model_class": "os.system", "serialization_format": "skops"}}
    with pytest.raises(ArtifactRejected, match="outside lightgbm"):
        load_native(tmp_path, lgb, "lightgbm", LoadOptions(), False)


@pytest.mark.parametrize("data", ["../outside.json", "/etc/passwd"])
def test_a_file_outside_the_verified_artifact_is_refused(tmp_path: Path, data: str) -> None:
    local = tmp_path / "artifact"
    local.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    flavors = {"xgboost": {"data": data, "model_class": "xgboost.sklearn.XGBClassifier"}}
    with pytest.raises(ArtifactRejected, match="outside the artifact"):
        load_native(local, flavors, "xgboost", LoadOptions(), False)


def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now fails
    flavors = {"lightgbm": {"data": "model.lgb", "model_class": "lightgbm.basic.Booster"}}
    with pytest.raises(ArtifactRejected, match=r"pip install 'modelgate\[lightgbm\]'"):
        load_native(tmp_path, flavors, "lightgbm", LoadOptions(), False)


def test_a_scikit_learn_version_skew_loads_with_a_warning_or_names_both_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sklearn

    from registry.loader import _load_native

    local = _artifact(tmp_path, ["sklearn.tree._tree.Tree"])
    flavors = read_flavors(local)
    flavors["sklearn"]["sklearn_version"] = "1.0.2"
    with caplog.at_level("WARNING", logger="registry.loader"):
        native = _load_native("m", 1, local, flavors, "sklearn", LoadOptions(), False)
    assert native.model_type == "RandomForestClassifier"
    assert f"saved with scikit-learn 1.0.2 and loads under {sklearn.__version__}" in caplog.text
    (local / "model.bin").write_bytes(b"not a skops file")
    with pytest.raises(ArtifactRejected) as refused:
        _load_native("m", 1, local, flavors, "sklearn", LoadOptions(), False)
    assert f"scikit-learn 1.0.2, this is {sklearn.__version__}" in refused.value.message
