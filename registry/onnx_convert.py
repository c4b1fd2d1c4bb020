"""Convert a fitted scikit-learn estimator to ONNX so that it computes what scikit-learn computes.

The graph takes float64 rows, so linear steps (scalers, logistic regression) run in double
precision. Trees are the exception, on purpose: scikit-learn casts a tree's input to float32 and
tests `x32 <= t` against its float64 threshold t. The ONNX tree operators hold float32
thresholds (skl2onnx stores the largest float32 not above t, so that `x32 <= floor32(t)` holds
exactly when `x32 <= t` does), but compared with a float64 row they send a value lying between
floor32(t) and t down the other branch. So every tree operator gets its input cast to float32,
as in scikit-learn. Whether that is enough is not assumed: `registry.onnx_verify` checks every
conversion, on rows lying exactly on the thresholds, before it is kept.

XGBoost, LightGBM and CatBoost models are converted too (`registry.onnx_boosters`): XGBoost and
CatBoost trees get float32 input as well, since those libraries compare in float32; LightGBM's
trees compare the float64 row, as LightGBM does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from registry import onnx_boosters
from registry.onnx_boosters import BoosterUnsupported

_TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
#: Opsets of the graph: ONNX 17 and ONNX-ML 3 run on the pinned onnxruntime.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class ConversionUnsupported(Exception):
    """The estimator (or one of its steps) has no exact ONNX conversion here."""


def tree_estimators(estimator: Any) -> list[Any]:
    """The fitted trees of a tree model, in skl2onnx's order (ensemble member order), else []."""
    if hasattr(estimator, "tree_"):
        return [estimator]
    members = getattr(estimator, "estimators_", None)
    if members is None:
        return []
    flat = list(np.ravel(np.asarray(members, dtype=object)))
    return flat if all(hasattr(tree, "tree_") for tree in flat) else []


def convert(estimator: Any, n_features: int) -> onnx.ModelProto:
    """The ONNX graph of `estimator` for rows of `n_features` float64 values."""
    own = onnx_boosters.is_own_object(estimator)
    if own:
        try:
            model = onnx_boosters.own_graph(estimator, n_features)
        except BoosterUnsupported as exc:
            raise ConversionUnsupported(str(exc)) from exc
    else:
        model = _skl2onnx_graph(estimator, n_features)
    tree_ops = [node for node in model.graph.node if node.op_type in _TREE_OPS]
    if tree_ops and not onnx_boosters.compares_in_double(estimator):
        _cast_tree_inputs(model, tree_ops)
    if tree_ops and not own:  # the libraries' own graphs expect float32 scores already
        _cast_tree_scores(model, tree_ops)
    onnx.checker.check_model(model)
    return model


def _skl2onnx_graph(estimator: Any, n_features: int) -> onnx.ModelProto:
    from skl2onnx import to_onnx  # heavy import; only conversions need it
    from skl2onnx.common.data_types import DoubleTensorType

    opset = TARGET_OPSET
    if onnx_boosters.flavor_of(estimator) is not None:
        onnx_boosters.register_converters()
        estimator, opset = onnx_boosters.positional(estimator), onnx_boosters.BOOSTER_OPSET
    final = onnx_boosters.final_step(estimator)
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        return to_onnx(
            estimator,
            initial_types=[("input", DoubleTensorType([None, n_features]))],
            options=options,
            target_opset=opset,
        )
    except Exception as exc:  # skl2onnx raises many kinds for "no converter for this"
        raise ConversionUnsupported(f"skl2onnx cannot convert it ({type(exc).__name__})") from exc


def _cast_tree_inputs(model: onnx.ModelProto, tree_ops: list[onnx.NodeProto]) -> None:
    """Run every tree operator on float32 input, as scikit-learn (XGBoost, CatBoost) does."""
    for n, node in enumerate(tree_ops):
        at = list(model.graph.node).index(node)
        cast_in = f"modelgate_tree_input_{n}"
        model.graph.node.insert(
            at, helper.make_node("Cast", [node.input[0]], [cast_in], to=TensorProto.FLOAT)
        )
        node.input[0] = cast_in


def _cast_tree_scores(model: onnx.ModelProto, tree_ops: list[onnx.NodeProto]) -> None:
    """Tree operators give float32 scores: give the rest of the graph its scores back in the
    type skl2onnx declared for them."""
    declared = {
        value.name: value.type.tensor_type.elem_type
        for value in list(model.graph.output) + list(model.graph.value_info)
    }
    for n, node in enumerate(tree_ops):
        # Scores: the classifier's second output, the regressor's only one.
        scores = 1 if node.op_type == "TreeEnsembleClassifier" else 0
        # Unlisted intermediate values are float64 like the graph's input.
        wanted = declared.get(node.output[scores], TensorProto.DOUBLE)
        if wanted == TensorProto.FLOAT:
            continue
        cast_out = f"modelgate_tree_scores_{n}"
        original = node.output[scores]
        node.output[scores] = cast_out
        at = list(model.graph.node).index(node)
        model.graph.node.insert(at + 1, helper.make_node("Cast", [cast_out], [original], to=wanted))


def split_points(estimator: Any) -> Iterator[tuple[int, float]]:
    """(feature, threshold) of every split of a tree model applied to raw input, else none."""
    if onnx_boosters.flavor_of(estimator) is not None:
        yield from onnx_boosters.split_points(estimator)
        return
    for tree in tree_estimators(estimator):
        structure = tree.tree_
        for feature, threshold in zip(structure.feature, structure.threshold, strict=True):
            if feature >= 0:  # leaves have feature -2
                yield int(feature), float(threshold)
