"""Which native model file `modelgate import` was given, and what its objective makes of it.

XGBoost (`.json`, `.ubj`), LightGBM (`.txt`) and CatBoost (`.cbm`) save their models in their
own formats; every other file is read as a joblib pickle (registry/importer.py). Only the
suffix and the first bytes are read here, never the libraries, so that a wrong file or a
missing extra is named before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kernel.errors import InvalidInput

CLASSIFIER = "classifier"
REGRESSOR = "regressor"
RANKER = "ranker"


@dataclass(frozen=True)
class NativeFormat:
    """One library's saved-model format."""

    library: str  # the module, and the MLflow flavor of the same name
    label: str  # how the user knows it
    suffixes: tuple[str, ...]
    how_saved: str  # the call that writes such a file, for error messages

    @property
    def extra(self) -> str:
        return f"pip install 'modelgate[{self.library}]'"


XGBOOST = NativeFormat("xgboost", "XGBoost", (".json", ".ubj"), "Booster.save_model / save_model")
LIGHTGBM = NativeFormat("lightgbm", "LightGBM", (".txt",), "Booster.save_model")
CATBOOST = NativeFormat("catboost", "CatBoost", (".cbm",), "save_model(format='cbm')")
FORMATS = (XGBOOST, LIGHTGBM, CATBOOST)

#: Objectives whose models answer classes and probabilities, per library (as the saved file
#: names them: LightGBM and CatBoost write their canonical names, aliases never appear).
_CLASSIFIERS = {
    "xgboost": {"binary:logistic", "binary:logitraw", "binary:hinge", "multi:softmax",
                "multi:softprob"},
    "lightgbm": {"binary", "multiclass", "multiclassova"},
    "catboost": {"Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll"},
}  # fmt: skip
_RANKERS = {
    "xgboost": {"rank:pairwise", "rank:ndcg", "rank:map"},
    "lightgbm": {"lambdarank", "rank_xendcg"},
    "catboost": {"YetiRank", "YetiRankPairwise", "PairLogit", "PairLogitPairwise", "QueryRMSE",
                 "QuerySoftMax", "QueryCrossEntropy", "StochasticFilter", "StochasticRank",
                 "LambdaMart"},
}  # fmt: skip

#: How many leading bytes are enough to recognise each format.
_HEAD_BYTES = 256


def native_format(path: Path) -> NativeFormat | None:
    """The native format a file's suffix names, or None for a joblib file."""
    suffix = path.suffix.lower()
    return next((f for f in FORMATS if suffix in f.suffixes), None)


def check_header(path: Path, fmt: NativeFormat) -> None:
    """Refuse a file whose first bytes are not what `fmt` writes (a JSON dump, a CSV, ...)."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not _looks_like(head, fmt):
        raise InvalidInput(
            f"{path.name} is not a {fmt.label} model file (a '{path.suffix}' file is read as "
            f"what {fmt.label}'s {fmt.how_saved} writes)"
        )


def _looks_like(head: bytes, fmt: NativeFormat) -> bool:
    if fmt is XGBOOST:
        # JSON `{"learner": ...}`, or UBJSON `{L<length>learner...`: both open with the learner.
        return head.lstrip().startswith(b"{") and b"learner" in head
    if fmt is LIGHTGBM:
        return head.split(b"\n", 1)[0].strip() == b"tree"
    return head.startswith(b"CBM1")


def task_of(fmt: NativeFormat, objective: str) -> str:
    """classifier, ranker or regressor: what the saved objective makes the model answer."""
    if objective in _CLASSIFIERS[fmt.library]:
        return CLASSIFIER
    if objective in _RANKERS[fmt.library]:
        return RANKER
    return REGRESSOR


def own_names(fmt: NativeFormat, names: list[str] | None, width: int) -> list[str] | None:
    """The feature names the model was trained with, or None when the file holds only the
    library's placeholders (LightGBM's `Column_0`, CatBoost's `0`; XGBoost saves none)."""
    if not names:
        return None
    placeholders = {
        LIGHTGBM: [f"Column_{i}" for i in range(width)],
        CATBOOST: [str(i) for i in range(width)],
    }.get(fmt)
    return None if names == placeholders else [str(n) for n in names]


def sample_columns(
    fmt: NativeFormat, sample: pd.DataFrame, names: list[str] | None, width: int
) -> pd.DataFrame:
    """The sample as the model's input: its own columns in the model's order when the file
    names its features, else the sample's columns as they are, which must be as many."""
    if names is not None:
        missing = [n for n in names if n not in sample.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InvalidInput(
                f"the {fmt.label} model was trained on features the sample lacks: {shown}"
            )
        return sample[names]
    if sample.shape[1] != width:
        raise InvalidInput(
            f"the sample has {sample.shape[1]} columns and the {fmt.label} model takes {width} "
            "(its file names no features, so the sample's columns are the features, in order)"
        )
    return sample


def read_sample(fmt: NativeFormat, sample_path: Path | None) -> pd.DataFrame:
    """The sample CSV every native import needs: the signature's names and types."""
    if sample_path is None:
        raise InvalidInput(
            f"a {fmt.label} file needs --sample: a CSV with a header row and a few input rows, "
            "for the model's signature"
        )
    try:
        sample = pd.read_csv(sample_path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"{sample_path.name} is not a readable CSV ({exc})") from exc
    if sample.empty:
        raise InvalidInput(f"{sample_path.name} has no rows; the signature needs at least one")
    return sample
