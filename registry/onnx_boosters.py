"""ONNX graphs of the boosting libraries' models, and where their trees split.

XGBoost's and LightGBM's scikit-learn estimators (alone or ending a pipeline) go through
skl2onnx with onnxmltools' converters registered; their own `Booster` objects, and every CatBoost
model (through CatBoost's own export), are converted here, and their graphs are given float64
rows like every other graph. What each library compares decides what its trees get:

- XGBoost and CatBoost cast a row to float32 and compare it with float32 thresholds, so their
  trees get float32 input (`registry.onnx_convert` casts it), as the library does.
- LightGBM compares the float64 row with float64 thresholds, so its trees get the float64 row.
  onnxmltools stores those thresholds as float32, though, and LightGBM reads any |x| <= 1e-35
  as zero: a row between a threshold and its float32 rounding (or a tiny one) goes the other
  way. Verification probes every threshold and its float64 neighbours, so such a twin is
  refused and LightGBM serves. LightGBM's thresholds are almost never float32 values (on
  integer features they are 2.5000000000000004 and the like); a model splitting only 0/1
  features (threshold 1e-35, a float32) keeps its twin.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

#: The libraries converted here, by the top-level package of the model's type.
FLAVORS = ("xgboost", "lightgbm", "catboost")
#: Opsets of graphs skl2onnx builds around XGBoost's and LightGBM's converters.
BOOSTER_OPSET = {"": 18, "ai.onnx.ml": 3}
#: onnxmltools' own conversions (the Boosters) go no higher than this.
ONNXMLTOOLS_OPSET = 15
TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


class BoosterUnsupported(Exception):
    """The model has no exact ONNX conversion here; the message says why."""


def final_step(estimator: Any) -> Any:
    """A pipeline's last step, or the estimator itself."""
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def flavor_of(estimator: Any) -> str | None:
    """The library of the (final) model: "xgboost", "lightgbm", "catboost", or None."""
    package = type(final_step(estimator)).__module__.split(".")[0]
    return package if package in FLAVORS else None


def takes_missing(estimator: Any) -> bool:
    """Whether the model reads NaN as a missing value (every boosting library does)."""
    return flavor_of(estimator) is not None


def compares_in_double(estimator: Any) -> bool:
    """Whether the trees compare float64 rows (LightGBM) rather than float32 ones."""
    return flavor_of(estimator) == "lightgbm"


def is_own_object(estimator: Any) -> bool:
    """A library object skl2onnx cannot take: a Booster, or any CatBoost model."""
    flavor = flavor_of(estimator)
    if flavor is None or hasattr(estimator, "steps"):
        return False
    return flavor == "catboost" or type(estimator).__name__ == "Booster"


@functools.cache
def register_converters() -> None:
    """Teach skl2onnx XGBoost's and LightGBM's scikit-learn estimators (once per process)."""
    import lightgbm
    import xgboost
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for model, alias, convert in (
        (xgboost.XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (lightgbm.LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_linear_classifier_output_shapes,
            convert,
            options=classifier_options,
        )
    for model, alias, convert in (
        (xgboost.XGBRegressor, "XGBoostXGBRegressor", convert_xgboost),
        (lightgbm.LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm),
    ):
        update_registered_converter(model, alias, calculate_linear_regressor_output_shapes, convert)


def positional(estimator: Any) -> Any:
    """The estimator itself, or a copy whose XGBoost booster forgets its feature names:
    onnxmltools reads features as `f<i>` only, and rows come in signature order anyway."""
    import copy

    if flavor_of(estimator) != "xgboost" or _xgboost_booster(estimator).feature_names is None:
        return estimator
    twin = copy.deepcopy(estimator)
    _xgboost_booster(twin).feature_names = None
    return twin


def own_graph(estimator: Any, n_features: int) -> onnx.ModelProto:
    """The graph of a Booster or a CatBoost model, taking float64 rows; no ZipMap."""
    from onnxmltools.convert.common.data_types import FloatTensorType

    flavor = flavor_of(estimator)
    initial_types = [("input", FloatTensorType([None, n_features]))]
    try:
        if flavor == "catboost":
            model = _catboost_graph(estimator)
        elif flavor == "xgboost":
            from onnxmltools import convert_xgboost

            model = convert_xgboost(
                positional(estimator),
                initial_types=initial_types,
                target_opset=ONNXMLTOOLS_OPSET,
            )
        else:
            from onnxmltools import convert_lightgbm

            model = convert_lightgbm(
                estimator,
                initial_types=initial_types,
                target_opset=ONNXMLTOOLS_OPSET,
                zipmap=False,
            )
    except BoosterUnsupported:
        raise
    except Exception as exc:  # the converters raise many kinds for "not this model"
        raise BoosterUnsupported(f"{flavor} conversion failed ({type(exc).__name__})") from exc
    _drop_zipmap(model)
    _double_input(model)
    _unknown_output_dims(model)
    return model


def refusal(estimator: Any) -> str | None:
    """Why the model is never converted, whatever its signature says, or None."""
    flavor = flavor_of(estimator)
    if flavor == "catboost" and not hasattr(estimator, "steps"):
        categorical = [int(at) for at in estimator.get_cat_feature_indices()]
        if categorical:
            return (
                f"CatBoost categorical features (columns {categorical}) have no exact ONNX "
                "export; the model runs natively only"
            )
    if flavor == "lightgbm" and len(getattr(estimator, "steps", ())) > 1:
        # Behind preprocessing no sample row can be placed on a threshold, so verification
        # could not see the float32 rounding: it is counted instead.
        limit = float(np.finfo(np.float32).max)  # past it (1e300: "NaN or not"), no rounding
        rounded = sum(
            abs(t) < limit and float(np.float32(t)) != t for _, t in split_points(estimator)
        )
        if rounded:
            return (
                f"{rounded} LightGBM thresholds are not float32 values (the ONNX converter "
                "rounds them) and behind preprocessing no row can be placed on them"
            )
    return None


def _catboost_graph(model: Any) -> onnx.ModelProto:
    reason = refusal(model)
    if reason is not None:
        raise BoosterUnsupported(reason)
    with tempfile.TemporaryDirectory(prefix="modelgate-catboost-") as scratch:
        path = Path(scratch) / "model.onnx"
        model.save_model(str(path), format="onnx")
        return onnx.load(str(path))


def _drop_zipmap(model: onnx.ModelProto) -> None:
    """Probabilities as the tensor fed to a ZipMap, not as a list of maps."""
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        for output in graph.output:
            if output.name == node.output[0]:
                output.CopyFrom(
                    helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, ["N", None])
                )
        graph.node.remove(node)


def _unknown_output_dims(model: onnx.ModelProto) -> None:
    """Outputs of any length: the exports declare some wrongly ([N] for CatBoost's [N, 1]
    values, [1] for onnxmltools' LightGBM labels), and onnxruntime warns on every call."""
    classifier = any(node.op_type == "TreeEnsembleClassifier" for node in model.graph.node)
    for output, rank in zip(model.graph.output, [1, 2] if classifier else [2], strict=False):
        shape = output.type.tensor_type.shape
        shape.ClearField("dim")
        for _ in range(rank):
            shape.dim.add()


def _double_input(model: onnx.ModelProto) -> None:
    """Make the graph take float64 rows; its trees read them as they are (tree operators take
    float64 too), and `registry.onnx_convert` casts them to float32 where the library does."""
    graph = model.graph
    name = graph.input[0].name
    readers = [node for node in graph.node if name in node.input]
    if not readers or any(node.op_type not in TREE_OPS for node in readers):
        raise BoosterUnsupported("its graph reads the input outside its tree operators")
    graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    if not any(opset.domain in ("", "ai.onnx") for opset in model.opset_import):
        # Casts are added to the graph later: they need the default domain (and its IR).
        model.opset_import.append(helper.make_opsetid("", ONNXMLTOOLS_OPSET))
        model.ir_version = max(model.ir_version, 8)


def split_points(estimator: Any) -> Iterator[tuple[int, float]]:
    """(feature, threshold) of every numeric split of a boosting library's model."""
    flavor = flavor_of(estimator)
    if flavor == "xgboost":
        yield from _xgboost_splits(_xgboost_booster(estimator))
    elif flavor == "lightgbm":
        final = final_step(estimator)
        yield from _lightgbm_splits(final if type(final).__name__ == "Booster" else final.booster_)
    elif flavor == "catboost" and not hasattr(estimator, "steps"):
        lowest = float(np.finfo(np.float32).max)
        for feature, borders in estimator.get_borders().items():
            for border in borders:  # CatBoost: x > border goes right
                # +-float32 max is where CatBoost sends NaN (the NaN rows probe it).
                if abs(border) < lowest:
                    yield int(feature), float(border)


def _xgboost_booster(estimator: Any) -> Any:
    final = final_step(estimator)
    return final if type(final).__name__ == "Booster" else final.get_booster()


def _xgboost_splits(booster: Any) -> Iterator[tuple[int, float]]:
    """XGBoost goes left when x < split, both in float32: its splits are float32 values."""
    frame = booster.trees_to_dataframe()
    frame = frame[(frame["Feature"] != "Leaf") & frame["Split"].notna()]
    names = booster.feature_names
    position = {name: at for at, name in enumerate(names)} if names else None
    for feature, split in zip(frame["Feature"], frame["Split"], strict=True):
        at = position[feature] if position is not None else int(str(feature)[1:])
        yield at, float(np.float32(split))


def _lightgbm_splits(booster: Any) -> Iterator[tuple[int, float]]:
    """LightGBM goes left when x <= threshold, in float64 (the dump has every digit)."""
    frame = booster.trees_to_dataframe()
    frame = frame[frame["decision_type"] == "<="]
    position = {name: at for at, name in enumerate(booster.feature_name())}
    for feature, threshold in zip(frame["split_feature"], frame["threshold"], strict=True):
        yield position[feature], float(threshold)
