"""Native model files for `modelgate import`: which format a file is, what its objective makes
of it, how the sample is checked, and the errors before anything reaches MLflow
(registry/native_files.py, registry/import_native.py, registry/importer.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from kernel.errors import InvalidInput
from registry.import_native import load_native
from registry.importer import import_model
from registry.native_files import (
    CATBOOST,
    CLASSIFIER,
    LIGHTGBM,
    RANKER,
    REGRESSOR,
    XGBOOST,
    check_header,
    native_format,
    own_names,
    read_sample,
    sample_columns,
    task_of,
)

X, Y = load_iris(return_X_y=True)
NAMES = ["sl", "sw", "pl", "pw"]


class NoRegistry:
    """Any registry call fails the test: these errors come before MLflow is reached."""

    tracking_uri = "http://127.0.0.1:9"

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the registry was used ({name})")


# -- which format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("model.json", XGBOOST),
        ("model.UBJ", XGBOOST),
        ("booster.txt", LIGHTGBM),
        ("model.cbm", CATBOOST),
        ("model.pkl", None),
        ("model.joblib", None),
        ("model", None),
    ],
)
def test_the_suffix_names_the_format(filename: str, expected: object) -> None:
    assert native_format(Path(filename)) is expected


def test_each_library_saves_what_its_header_check_accepts(tmp_path: Path) -> None:
    import catboost
    import lightgbm
    import xgboost

    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3},
                            xgboost.DMatrix(X, label=Y), 2)  # fmt: skip
    booster.save_model(tmp_path / "m.json")
    booster.save_model(tmp_path / "m.ubj")
    lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, Y > 0), 2
                   ).save_model(tmp_path / "m.txt")  # fmt: skip
    catboost.CatBoostRegressor(iterations=2, verbose=0, allow_writing_files=False).fit(
        X, Y
    ).save_model(tmp_path / "m.cbm")
    for path in sorted(tmp_path.iterdir()):
        fmt = native_format(path)
        assert fmt is not None
        check_header(path, fmt)


@pytest.mark.parametrize(
    ("filename", "content", "label"),
    [
        ("dump.json", b'{"name": "LightGBM dump", "tree_info": []}', "XGBoost"),  # lgb dump_model
        ("cat.json", b'{"features_info": {}, "oblivious_trees": []}', "XGBoost"),
        ("notes.txt", b"feature,importance\nf0,3\n", "LightGBM"),
        ("model.cbm", b"\x80\x04\x95joblib pickle", "CatBoost"),
        ("empty.ubj", b"", "XGBoost"),
    ],
)
def test_a_file_that_is_not_the_format_its_suffix_says_is_refused(
    tmp_path: Path, filename: str, content: bytes, label: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    fmt = native_format(path)
    assert fmt is not None
    with pytest.raises(InvalidInput, match=f"{filename} is not a {label} model file"):
        check_header(path, fmt)


def test_a_file_with_the_right_header_and_a_broken_body_is_refused_cleanly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cut.txt"
    path.write_text("tree\nversion=v4\nnum_class=oops\n")
    with pytest.raises(InvalidInput, match=r"cut.txt is not a loadable LightGBM model \("):
        load_native(LIGHTGBM, path)


# -- what the objective makes of it ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "objective", "task"),
    [
        (XGBOOST, "multi:softprob", CLASSIFIER),
        (XGBOOST, "binary:logistic", CLASSIFIER),
        (XGBOOST, "reg:squarederror", REGRESSOR),
        (XGBOOST, "count:poisson", REGRESSOR),
        (XGBOOST, "rank:ndcg", RANKER),
        (LIGHTGBM, "multiclass", CLASSIFIER),
        (LIGHTGBM, "binary", CLASSIFIER),
        (LIGHTGBM, "regression", REGRESSOR),
        (LIGHTGBM, "cross_entropy", REGRESSOR),  # probabilities of a [0, 1] target, no classes
        (LIGHTGBM, "lambdarank", RANKER),
        (CATBOOST, "MultiClass", CLASSIFIER),
        (CATBOOST, "Logloss", CLASSIFIER),
        (CATBOOST, "RMSE", REGRESSOR),
        (CATBOOST, "YetiRank", RANKER),
    ],
)
def test_the_objective_decides_classifier_regressor_or_ranker(
    fmt: object, objective: str, task: str
) -> None:
    assert task_of(fmt, objective) == task  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("objective", "cls", "has_proba"),
    [("multi:softprob", "XGBClassifier", True), ("reg:squarederror", "XGBRegressor", False)],
)
def test_an_xgboost_booster_loads_as_the_class_its_objective_calls_for(
    tmp_path: Path, objective: str, cls: str, has_proba: bool
) -> None:
    import xgboost

    params = {"objective": objective, **({"num_class": 3} if "multi" in objective else {})}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=Y), 3)
    booster.save_model(tmp_path / "m.ubj")
    native = load_native(XGBOOST, tmp_path / "m.ubj")
    assert type(native.model).__name__ == cls and native.objective == objective
    assert native.names is None and native.width == 4
    assert hasattr(native.model, "predict_proba") is has_proba
    if has_proba:
        assert native.model.classes_.tolist() == [0, 1, 2]
        proba = native.model.predict_proba(X[:5])
        assert np.allclose(proba, booster.predict(xgboost.DMatrix(X[:5])))


def test_a_catboost_classifier_keeps_its_own_labels(tmp_path: Path) -> None:
    import catboost

    labels = np.array(["setosa", "versicolor", "virginica"])[Y]
    frame = pd.DataFrame(X, columns=NAMES)
    catboost.CatBoostClassifier(iterations=3, verbose=0, allow_writing_files=False).fit(
        frame, labels
    ).save_model(tmp_path / "m.cbm")
    native = load_native(CATBOOST, tmp_path / "m.cbm")
    assert native.task == CLASSIFIER and native.names == NAMES
    assert native.model.classes_.tolist() == labels[[0, 50, 100]].tolist()
    assert native.predict(frame.head(3)).tolist() == ["setosa"] * 3  # one label a row


# -- feature names and the sample --------------------------------------------------------------


def test_placeholder_names_are_no_names() -> None:
    assert own_names(LIGHTGBM, ["Column_0", "Column_1"], 2) is None
    assert own_names(CATBOOST, ["0", "1", "2"], 3) is None
    assert own_names(XGBOOST, None, 3) is None
    assert own_names(LIGHTGBM, ["a", "Column_1"], 2) == ["a", "Column_1"]
    assert own_names(CATBOOST, ["1", "0"], 2) == ["1", "0"]


def test_a_named_model_takes_the_samples_columns_in_its_own_order() -> None:
    sample = pd.DataFrame(X[:3], columns=NAMES).assign(extra=1)
    chosen = sample_columns(XGBOOST, sample[["pw", "extra", "sl", "pl", "sw"]], NAMES, 4)
    assert list(chosen.columns) == NAMES
    assert np.array_equal(chosen.to_numpy(), X[:3])


def test_a_sample_lacking_a_named_feature_is_refused() -> None:
    sample = pd.DataFrame(X[:3, :3], columns=NAMES[:3])
    with pytest.raises(InvalidInput, match="trained on features the sample lacks: pw"):
        sample_columns(LIGHTGBM, sample, NAMES, 4)


def test_a_positional_model_takes_the_sample_as_it_is_when_as_wide() -> None:
    sample = pd.DataFrame(X[:3], columns=["a", "b", "c", "d"])
    assert sample_columns(XGBOOST, sample, None, 4) is sample
    with pytest.raises(
        InvalidInput, match="the sample has 3 columns and the XGBoost model takes 4"
    ):
        sample_columns(XGBOOST, sample.iloc[:, :3], None, 4)


def test_the_sample_is_required_and_must_have_rows(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="a CatBoost file needs --sample"):
        read_sample(CATBOOST, None)
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(InvalidInput, match="header.csv has no rows"):
        read_sample(CATBOOST, tmp_path / "header.csv")


# -- errors of the import itself, before the registry --------------------------------------------


def test_a_missing_extra_names_the_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.txt").write_text("tree\nversion=v4\n")
    pd.DataFrame(X[:3]).to_csv(tmp_path / "sample.csv", index=False)
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # `import lightgbm` now raises
    with pytest.raises(InvalidInput) as raised:
        import_model(NoRegistry(), tmp_path / "model.txt", name="m",  # type: ignore[arg-type]
                     sample_path=tmp_path / "sample.csv")  # fmt: skip
    assert raised.value.message == (
        "model.txt is a LightGBM model and lightgbm is not installed: "
        "pip install 'modelgate[lightgbm]'"
    )


def test_a_preprocessor_with_a_native_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.cbm").write_bytes(b"CBM1")
    with pytest.raises(InvalidInput, match="--preprocessor goes with a joblib model only"):
        import_model(NoRegistry(), tmp_path / "model.cbm", name="m",  # type: ignore[arg-type]
                     preprocessor_path=tmp_path / "p.pkl")  # fmt: skip


def test_a_sample_the_model_cannot_predict_is_refused(tmp_path: Path) -> None:
    import xgboost

    xgboost.XGBRegressor(n_estimators=2).fit(X, Y).save_model(tmp_path / "m.json")
    pd.DataFrame({"a": ["x"], "b": ["y"], "c": ["z"], "d": ["w"]}).to_csv(
        tmp_path / "words.csv", index=False
    )
    with pytest.raises(InvalidInput, match="cannot predict the sample's rows"):
        import_model(NoRegistry(), tmp_path / "m.json", name="m",  # type: ignore[arg-type]
                     sample_path=tmp_path / "words.csv")  # fmt: skip
