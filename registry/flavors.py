"""Which MLflow flavor of a verified artifact Modelgate loads, and how, safely.

Flavors are tried in this order: `sklearn`, `xgboost`, `lightgbm`, `catboost`, and then
`python_function` for anything else (only with `MODELGATE_ALLOW_PYFUNC`). Boosters' own files
(XGBoost json/ubj, LightGBM text, CatBoost cbm) are data, not code. skops files name the types
they want trusted, and only types that `LoadOptions.trusts_type` allows are. Pickle runs code
when loaded: it needs `MODELGATE_ALLOW_PICKLE` and a registered or adopted digest.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from pathlib import Path
from typing import Any

import yaml

from kernel.errors import ArtifactRejected
from kernel.loading import LoadOptions
from runtime.base import NativeRuntime

logger = logging.getLogger(__name__)

NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm", "catboost")
PYFUNC = "python_function"
#: The pip extra that brings each flavor's library.
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}
#: XGBoost classes an `xgboost` flavor may name (what mlflow.xgboost logs).
XGBOOST_CLASSES = (
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRanker",
    "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor",
)
#: CatBoost classes a `catboost` flavor may name.
CATBOOST_TYPES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")


def read_flavors(local: Path) -> dict[str, Any]:
    """The `flavors` mapping of the artifact's MLmodel file."""
    try:
        with (local / "MLmodel").open() as handle:
            flavors = yaml.safe_load(handle).get("flavors", {})
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ArtifactRejected("the artifact has no readable MLmodel file") from exc
    if not isinstance(flavors, dict):
        raise ArtifactRejected("the artifact's MLmodel file lists no flavors")
    return flavors


def choose_flavor(flavors: dict[str, Any], options: LoadOptions) -> str:
    """The flavor to load; ArtifactRejected naming the setting when only pyfunc is left."""
    for flavor in NATIVE_FLAVORS:
        if isinstance(flavors.get(flavor), dict):
            return flavor
    if PYFUNC in flavors:
        if not options.allow_pyfunc:
            others = sorted(set(flavors) - {PYFUNC}) or ["none"]
            raise ArtifactRejected(
                f"the model has only MLflow's python_function flavor (others: "
                f"{', '.join(others)}), which runs its author's code: set "
                "MODELGATE_ALLOW_PYFUNC=true to serve it"
            )
        return PYFUNC
    raise ArtifactRejected(
        f"the artifact has no flavor Modelgate serves ({', '.join(sorted(flavors)) or 'none'})"
    )


def load_native(
    local: Path, flavors: dict[str, Any], flavor: str, options: LoadOptions, vouched: bool
) -> NativeRuntime:
    """Deserialise the chosen flavor into its runtime; ArtifactRejected with the reason."""
    conf = flavors[flavor]
    if flavor == PYFUNC:
        _require_vouched("a python_function model", vouched)
        from registry.pyfunc_load import load_pyfunc

        return load_pyfunc(local, options.pyfunc_timeout_seconds)
    try:
        if flavor == "sklearn":
            from runtime.sklearn import SklearnRuntime

            fmt = conf.get("serialization_format", "pickle")
            return SklearnRuntime(
                _sklearn_object(local, conf, conf["pickled_model"], fmt, options, vouched)
            )
        if flavor == "xgboost":
            return _xgboost(local, conf)
        if flavor == "lightgbm":
            return _lightgbm(local, conf, options, vouched)
        return _catboost(local, conf)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(flavor)
        if extra is None or exc.name not in (extra, f"{extra}.sklearn", f"{extra}.core"):
            raise
        raise ArtifactRejected(
            f"the model is a {flavor} model, but {extra} is not installed here: "
            f"install the extra, pip install 'modelgate[{extra}]'"
        ) from None


def inside(local: Path, file: Any) -> Path:
    """`file` of the MLmodel file, which must lie inside the verified artifact directory."""
    path = (local / str(file)).resolve()
    if not path.is_relative_to(local.resolve()):
        raise ArtifactRejected("the MLmodel file names a file outside the artifact")
    return path


def _sklearn_object(
    local: Path, conf: dict[str, Any], file: str, fmt: str, options: LoadOptions, vouched: bool
) -> Any:
    """A scikit-learn-API object from a skops or (allowed, vouched) pickle file."""
    path = inside(local, file)
    if fmt == "skops":
        import skops.io

        # The artifact names the types it wants trusted; whoever can register a model can write
        # that list, so only the types the settings allow are ever trusted.
        trusted = [str(t) for t in conf.get("skops_trusted_types") or []]
        refused = [t for t in trusted if not options.trusts_type(t)]
        if refused:
            raise ArtifactRejected(
                f"the artifact asks to trust types outside the allowed modules: {refused[:3]} "
                "(MODELGATE_TRUSTED_TYPE_PREFIXES, MODELGATE_TRUSTED_TYPES)"
            )
        return skops.io.load(path, trusted=trusted)
    if fmt in ("pickle", "cloudpickle"):
        if not options.allow_pickle:
            raise ArtifactRejected(
                f"the artifact is a {fmt} file, which runs code when loaded: set "
                "MODELGATE_ALLOW_PICKLE=true to load it, and vouch for this version with "
                "`modelgate adopt NAME VERSION` (pickle is never trusted on first use)"
            )
        _require_vouched(f"a {fmt} file", vouched)
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - verified, vouched artifact, opt-in setting
    raise ArtifactRejected(f"serialization format '{fmt}' is not allowed")


def _require_vouched(what: str, vouched: bool) -> None:
    if not vouched:
        raise ArtifactRejected(
            f"the artifact is {what}, which runs code when loaded and is never trusted on "
            "first use: vouch for this version with `modelgate adopt NAME VERSION`"
        )


def _library_class(dotted: str, package: str) -> type:
    """A class the flavor names, only from the flavor's own package."""
    module, _, name = dotted.rpartition(".")
    if not module.startswith(f"{package}.") and module != package:
        raise ArtifactRejected(f"the {package} flavor names a class outside {package}: {dotted}")
    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type):
        raise ArtifactRejected(f"the {package} flavor names an unknown class: {dotted}")
    return found


def _xgboost(local: Path, conf: dict[str, Any]) -> NativeRuntime:
    from runtime.xgboost import XGBoostRuntime

    model_class = str(conf.get("model_class", "xgboost.core.Booster"))
    if model_class not in XGBOOST_CLASSES:
        raise ArtifactRejected(f"the xgboost flavor names an unsupported class: {model_class}")
    model = _library_class(model_class, "xgboost")()
    model.load_model(str(inside(local, conf["data"])))  # json, ubj or the old binary: data
    return XGBoostRuntime(model)


def _lightgbm(
    local: Path, conf: dict[str, Any], options: LoadOptions, vouched: bool
) -> NativeRuntime:
    from runtime.lightgbm import LightGBMRuntime

    model_class = str(conf.get("model_class", "lightgbm.basic.Booster"))
    if model_class == "lightgbm.basic.Booster":
        import lightgbm

        # The booster's own text format (whatever serialization_format says), as MLflow reads it.
        return LightGBMRuntime(lightgbm.Booster(model_file=str(inside(local, conf["data"]))))
    _library_class(model_class, "lightgbm")
    fmt = conf.get("serialization_format", "cloudpickle")
    return LightGBMRuntime(_sklearn_object(local, conf, conf["data"], fmt, options, vouched))


def _catboost(local: Path, conf: dict[str, Any]) -> NativeRuntime:
    from runtime.catboost import CatBoostRuntime

    kind = str(conf.get("model_type", "CatBoost"))
    if kind not in CATBOOST_TYPES:
        raise ArtifactRejected(f"the catboost flavor names an unsupported model type: {kind}")
    model = _library_class(f"catboost.{kind}", "catboost")()
    model.load_model(str(inside(local, conf["data"])), format=str(conf.get("save_format", "cbm")))
    return CatBoostRuntime(model)
