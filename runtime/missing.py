"""Whether a fitted scikit-learn model takes missing values (NaN) in its input.

The loader asks this of a native estimator to decide the signature's `missing_ok`; it reads
scikit-learn's own tags (`input_tags.allow_nan`) and answers False whenever it is not sure.
"""

from __future__ import annotations

import math
from typing import Any


def takes_missing(estimator: Any) -> bool:
    """True when scikit-learn's tags say `estimator` takes NaN wherever its input has one.

    A pipeline's own tags never allow NaN (scikit-learn derives only `pairwise` and `sparse`
    from its steps), so a pipeline and a column transformer are read part by part: NaN must
    reach only steps whose tags allow it, and an imputer of NaN ends it. Any error: False.
    """
    if estimator is None or isinstance(estimator, str):  # a pipeline step's spelling, not a model
        return False
    try:
        takes, _ = _flow(estimator)
    except Exception:  # not an estimator, tags that cannot be read, an unfitted transformer
        return False
    return takes


def _flow(part: Any) -> tuple[bool, bool]:
    """(whether `part` takes NaN in its input, whether NaN may come out of it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.utils import get_tags

    if isinstance(part, str):  # "passthrough" hands NaN on, "drop" drops it
        return True, part == "passthrough"
    if part is None:  # a pipeline step left out
        return True, True
    if _imputes_nan(part):
        return True, False
    if isinstance(part, Pipeline):
        if not part.steps:
            return False, False
        for _, step in part.steps:
            takes, passes = _flow(step)
            if not takes:
                return False, False
            if not passes:  # nothing after this step sees a NaN
                return True, False
        return True, True
    if isinstance(part, ColumnTransformer | FeatureUnion):
        # A fitted column transformer lists every part, its remainder included.
        parts = (
            [t for _, t, _ in part.transformers_]
            if isinstance(part, ColumnTransformer)
            else [t for _, t in part.transformer_list]
        )
        flows = [_flow(p) for p in parts]
        return all(t for t, _ in flows), any(p for _, p in flows)
    allow = bool(get_tags(part).input_tags.allow_nan)
    return allow, allow


def _imputes_nan(part: Any) -> bool:
    """A scikit-learn imputer (Simple, KNN, Iterative) that replaces NaN."""
    cls = type(part)
    if not (cls.__module__.startswith("sklearn.impute") and cls.__name__.endswith("Imputer")):
        return False
    value = getattr(part, "missing_values", None)
    return isinstance(value, float) and math.isnan(value)
