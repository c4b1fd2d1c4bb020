"""Import an XGBoost, LightGBM or CatBoost model file the ordinary MLflow way.

The file is loaded by its own library (an optional extra), as the model class its objective
calls for: a classifier answers classes and probabilities. It is then logged with that
library's MLflow flavor (`mlflow.xgboost.log_model` and so on), with a signature inferred from
the sample CSV and the sample's first rows as input example, registered under the given name,
and its SHA-256 recorded as every Modelgate-registered version's is (registry/publish.py).
"""

from __future__ import annotations

import importlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from kernel.errors import AliasNotFound, InvalidInput
from registry.client import Registry
from registry.native_files import (
    CATBOOST,
    CLASSIFIER,
    LIGHTGBM,
    RANKER,
    XGBOOST,
    NativeFormat,
    check_header,
    own_names,
    read_sample,
    sample_columns,
    task_of,
)
from registry.publish import Published, record_digest

logger = logging.getLogger(__name__)

EXPERIMENT = "modelgate_imports"


@dataclass(frozen=True)
class NativeModel:
    """A model file loaded by its library, as the object its MLflow flavor logs."""

    fmt: NativeFormat
    model: Any
    objective: str
    task: str
    names: list[str] | None  # the features the file names, None for placeholders only
    width: int

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """What the flavor's pyfunc answers for `frame`: labels or values (LightGBM's Booster:
        a classifier's probabilities); CatBoost's one-column labels as a vector."""
        output = np.asarray(self.model.predict(frame))
        return output.ravel() if output.ndim == 2 and output.shape[1] == 1 else output


def library(fmt: NativeFormat, path: Path) -> ModuleType:
    """The format's library, or a clear error naming the extra that installs it."""
    try:
        return importlib.import_module(fmt.library)
    except ImportError as exc:
        raise InvalidInput(
            f"{path.name} is a {fmt.label} model and {fmt.library} is not installed: {fmt.extra}"
        ) from exc


def load_native(fmt: NativeFormat, path: Path) -> NativeModel:
    """Load `path` with its library; a file the library refuses is invalid input."""
    check_header(path, fmt)
    module = library(fmt, path)
    loader = {XGBOOST: _xgboost, LIGHTGBM: _lightgbm, CATBOOST: _catboost}[fmt]
    try:
        return loader(module, path)
    except Exception as exc:  # each library raises its own error type on a bad file
        raise InvalidInput(
            f"{path.name} is not a loadable {fmt.label} model ({type(exc).__name__})"
        ) from exc


def _xgboost(xgb: ModuleType, path: Path) -> NativeModel:
    # A Booster cannot tell whether it was trained as a classifier; its objective can, and the
    # scikit-learn class of that kind loads any saved Booster (classes 0..n-1).
    booster = xgb.Booster(model_file=str(path))
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    task = task_of(XGBOOST, objective)
    cls = {CLASSIFIER: xgb.XGBClassifier, RANKER: xgb.XGBRanker}.get(task, xgb.XGBRegressor)
    model = cls()
    model.load_model(str(path))
    width = int(booster.num_features())
    return NativeModel(
        XGBOOST, model, objective, task, own_names(XGBOOST, booster.feature_names, width), width
    )


def _lightgbm(lgb: ModuleType, path: Path) -> NativeModel:
    # The Booster itself is what MLflow logs natively (its text format, no pickle); for a
    # classifier objective its predictions are the probabilities.
    booster = lgb.Booster(model_file=str(path))
    objective = str(booster.params.get("objective", "")) or "regression"
    width = int(booster.num_feature())
    names = own_names(LIGHTGBM, booster.feature_name(), width)
    return NativeModel(LIGHTGBM, booster, objective, task_of(LIGHTGBM, objective), names, width)


def _catboost(cb: ModuleType, path: Path) -> NativeModel:
    probe = cb.CatBoost()
    probe.load_model(str(path), format="cbm")
    objective = str(probe.get_all_params().get("loss_function", ""))
    task = task_of(CATBOOST, objective)
    cls = {CLASSIFIER: cb.CatBoostClassifier, RANKER: cb.CatBoostRanker}.get(
        task, cb.CatBoostRegressor
    )
    model = cls()
    model.load_model(str(path), format="cbm")
    names = list(model.feature_names_ or [])
    return NativeModel(CATBOOST, model, objective, task, own_names(CATBOOST, names, len(names)),
                       len(names))  # fmt: skip


def import_native(
    registry: Registry,
    fmt: NativeFormat,
    model_path: Path,
    *,
    name: str,
    sample_path: Path | None,
    alias: str | None = "production",
) -> Published:
    """Register a native model file as a new version of `name`; set `alias` if it is unset."""
    sample = read_sample(fmt, sample_path)  # before the library: a missing sample is cheaper
    native = load_native(fmt, model_path)
    example = sample_columns(fmt, sample, native.names, native.width)
    try:
        output = native.predict(example.head(5))
    except Exception as exc:  # the library refuses the sample's values or types
        raise InvalidInput(
            f"the {fmt.label} model cannot predict the sample's rows ({type(exc).__name__}: {exc})"
        ) from exc
    params = {
        "source": f"{fmt.library} import",
        "model_file": model_path.name,
        "objective": native.objective,
        "task": native.task,
    }
    info, run_id = _log(registry, native, name, example, output, params, model_path)
    version = int(info.registered_model_version)
    digest = record_digest(registry, name, version)
    # `modelgate import` passes no alias and sets it itself once the gateways' verdict allows
    # (registry.verdicts.set_alias_if_loadable); a library caller's alias is set at once.
    alias_set = _set_alias_if_unset(registry, name, alias, version)
    logger.info("registered %s version %s from %s (alias set: %s)", name, version, fmt.label,
                alias_set)  # fmt: skip
    return Published(name, version, run_id, digest, alias_set, "not converted")


def _log(
    registry: Registry,
    native: NativeModel,
    name: str,
    example: pd.DataFrame,
    output: np.ndarray,
    params: dict[str, str],
    model_path: Path,
) -> tuple[Any, str]:
    """Log the model with its library's flavor in a new run and register it."""
    flavor = importlib.import_module(f"mlflow.{native.fmt.library}")
    extra: dict[str, Any] = {}
    if native.fmt is XGBOOST:
        extra["model_format"] = model_path.suffix.lower().lstrip(".")  # json stays json
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    signature = infer_signature(example, output)
    with mlflow.start_run() as run, warnings.catch_warnings():
        # The input example is predicted once more as a frame; a positional model may say so.
        warnings.filterwarnings("ignore", message=".*feature names", category=UserWarning)
        mlflow.log_params(params)
        info = flavor.log_model(
            native.model,
            name="model",
            signature=signature,
            input_example=example.head(2),
            registered_model_name=name,
            # The flavor's own list, which MLflow would otherwise infer in a subprocess.
            pip_requirements=flavor.get_default_pip_requirements(),
            **extra,
        )
    return info, run.info.run_id


def _set_alias_if_unset(registry: Registry, name: str, alias: str | None, version: int) -> bool:
    if not alias:
        return False
    try:
        registry.alias_version(name, alias)
    except AliasNotFound:
        registry.set_alias(name, alias, version)
        return True
    return False
