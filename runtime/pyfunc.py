"""`PyfuncRuntime`: a model with only MLflow's `python_function` flavor, which runs its author's
code. It answers predictions only (`probabilities` is null), each call under a time limit.

A call that overruns its limit fails with `PredictTimeout`; Python cannot stop the thread that
runs it, so calls run in a small pool of their own and an overrun holds one of its threads
until the author's code returns. When every thread is held, calls fail at once.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import PredictTimeout
from runtime.base import Prediction

#: Threads per pyfunc model: calls at once, and overruns tolerated before every call fails.
POOL_SIZE = 4


class PyfuncRuntime:
    name = "pyfunc"
    flavor = "python_function"
    inline_rows = 0
    worth_caching = True
    takes_missing = False
    classes = None
    has_probabilities = False

    def __init__(self, model: Any, timeout_seconds: float) -> None:
        self.estimator = model
        self.timeout_seconds = timeout_seconds
        self.columns: list[str] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, "pyfunc")
        self._free = threading.BoundedSemaphore(POOL_SIZE)

    @property
    def model_type(self) -> str:
        impl = getattr(self.estimator, "_model_impl", None)
        inner = getattr(impl, "python_model", impl)
        return type(inner).__name__ if inner is not None else "PyFuncModel"

    feature_names = None
    n_features = None

    def bind(self, columns: tuple[str, ...], all_numeric: bool) -> None:
        self.columns = list(columns)

    def predict(self, rows: list[list[Any]]) -> Prediction:
        if not self._free.acquire(blocking=False):
            raise PredictTimeout("the model's earlier calls are still running past their limit")
        try:
            frame = pd.DataFrame(rows, columns=self.columns)
            future = self._pool.submit(self.estimator.predict, frame)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        try:
            output = future.result(timeout=self.timeout_seconds)
        except concurrent.futures.TimeoutError:
            raise PredictTimeout(
                f"the model did not answer within {self.timeout_seconds:g} s"
            ) from None
        return Prediction(as_values(output, len(rows)), None)


def as_values(output: Any, n_rows: int) -> list[Any]:
    """A pyfunc's output (array, Series, DataFrame, list) as one JSON-safe value per row."""
    if isinstance(output, pd.DataFrame):
        output = output.iloc[:, 0] if output.shape[1] == 1 else output.to_numpy()
    values = np.asarray(output, dtype=object)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if len(values) != n_rows:
        raise ValueError(f"the model answered {len(values)} values for {n_rows} rows")
    return [_plain(v) for v in values]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)
