"""Import an existing model file: a joblib model (and preprocessor) as used by the hand-written
app (docs/legacy-api.md), or an XGBoost, LightGBM or CatBoost file (registry/import_native.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from kernel.errors import InvalidInput
from registry.client import Registry
from registry.import_native import import_native
from registry.native_files import native_format
from registry.publish import Published, publish
from runtime.sklearn import first_step

EXPERIMENT = "modelgate_imports"


def build_estimator(model: Any, preprocessor: Any | None) -> Any:
    """The served estimator: the model alone, or preprocessor and model as one pipeline."""
    if preprocessor is None:
        return model
    if not hasattr(preprocessor, "transform"):
        raise InvalidInput("the preprocessor has no 'transform' method")
    return Pipeline([("preprocessor", preprocessor), ("model", model)])


def example_frame(estimator: Any, sample: pd.DataFrame | None) -> pd.DataFrame:
    """Rows that show the input columns: the sample when given, else zeros of the right width."""
    first = first_step(estimator)
    names = getattr(first, "feature_names_in_", None)
    width = getattr(first, "n_features_in_", None)
    if sample is not None:
        if names is not None:
            missing = [n for n in names if n not in sample.columns]
            if missing:
                raise InvalidInput(f"the sample lacks column(s) {', '.join(map(str, missing))}")
            return sample[list(names)]
        if width is not None and sample.shape[1] != width:
            raise InvalidInput(f"the sample has {sample.shape[1]} columns, the model wants {width}")
        return sample
    if names is not None:
        columns = [str(n) for n in names]
    elif width is not None:
        columns = [f"f{i}" for i in range(int(width))]
    else:
        raise InvalidInput("the model does not say how many features it takes; give --sample")
    return pd.DataFrame(np.zeros((2, len(columns))), columns=columns)


def import_model(
    registry: Registry,
    model_path: Path,
    *,
    name: str,
    preprocessor_path: Path | None = None,
    sample_path: Path | None = None,
    alias: str | None = "production",
    onnx: bool = True,
) -> Published:
    """Register `model_path` as a new version of `name`: a native XGBoost (`.json`, `.ubj`),
    LightGBM (`.txt`) or CatBoost (`.cbm`) file by its suffix, any other file as joblib."""
    fmt = native_format(model_path)
    if fmt is None:
        return import_joblib(
            registry,
            model_path,
            name=name,
            preprocessor_path=preprocessor_path,
            sample_path=sample_path,
            alias=alias,
            onnx=onnx,
        )
    if preprocessor_path is not None:
        raise InvalidInput(
            f"--preprocessor goes with a joblib model only; a {fmt.label} file is the whole model"
        )
    return import_native(registry, fmt, model_path, name=name, sample_path=sample_path, alias=alias)


def import_joblib(
    registry: Registry,
    model_path: Path,
    *,
    name: str,
    preprocessor_path: Path | None = None,
    sample_path: Path | None = None,
    alias: str | None = "production",
    onnx: bool = True,
) -> Published:
    """Register `model.pkl` (+ `preprocessor.pkl`) as a new version of `name`.

    These are the user's own files on their own machine, so unpickling them here is their call;
    what reaches the registry is a skops artifact with a recorded SHA-256.
    """
    model = _load_joblib(model_path)
    if not hasattr(model, "predict"):
        raise InvalidInput("the model has no 'predict' method")
    preprocessor = _load_joblib(preprocessor_path) if preprocessor_path else None
    estimator = build_estimator(model, preprocessor)
    sample = pd.read_csv(sample_path) if sample_path else None
    example = example_frame(estimator, sample)
    params = {"source": "joblib import", "model_file": model_path.name}
    if preprocessor_path:
        params["preprocessor_file"] = preprocessor_path.name
    return publish(
        registry,
        estimator,
        name=name,
        experiment=EXPERIMENT,
        example=example,
        params=params,
        metrics={},
        alias=alias,
        onnx=onnx,
    )


def _load_joblib(path: Path) -> Any:
    try:
        return joblib.load(path)
    except Exception as exc:  # joblib and pickle raise almost anything on a bad file
        raise InvalidInput(
            f"{path.name} is not a loadable joblib file ({type(exc).__name__})"
        ) from exc
