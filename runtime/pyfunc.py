"""`PyfuncRuntime`: a model with only MLflow's `python_function` flavor, which runs its author's
code. It answers predictions only (`probabilities` is null), each call under a time limit.

The rows reach the model as a DataFrame whose numeric columns have the dtypes of the model's
input schema (`float` is float32, `integer` int32, `long` int64, `double` float64), as MLflow's
scoring server casts them before the model's own schema enforcement runs; an integer out of its
column's range is refused, where a cast would wrap it. What the model's side raises is sorted
here: its schema enforcement, or a ValueError, refuses the rows (InvalidInput); anything else
its code raises is `ModelRaised` (the coalescer decides whose fault it is).

A call that overruns its limit fails with `PredictTimeout`; Python cannot stop the thread that
runs it, so calls run in a small pool of their own and an overrun holds one of its threads
until the author's code returns. When every thread is held, calls fail at once.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kernel.errors import InvalidInput, ModelgateError, PredictTimeout
from runtime.base import LABELS, ModelRaised, Prediction

#: Threads per pyfunc model: calls at once, and overruns tolerated before every call fails.
POOL_SIZE = 4
#: The numpy dtype of each numeric MLflow column type, as `DataType.to_numpy()` gives them.
NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "integer": np.dtype(np.int32),
    "long": np.dtype(np.int64),
}
#: The error class MLflow gives a failure of a pyfunc's input schema enforcement.
SCHEMA_ENFORCEMENT_FAILED = "SCHEMA_ENFORCEMENT_FAILED"


class PyfuncRuntime:
    name = "pyfunc"
    flavor = "python_function"
    inline_rows = 0
    worth_caching = True
    takes_missing = False
    classes = None
    has_probabilities = False
    mlflow_output = LABELS

    def __init__(self, model: Any, timeout_seconds: float) -> None:
        self.estimator = model
        self.timeout_seconds = timeout_seconds
        self.columns: list[str] = []
        self.dtypes: dict[str, np.dtype[Any]] = {}
        #: Whether a call has been answered (a later raise is then less likely the model's own).
        self.answered = False
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
        self.dtypes = schema_dtypes(self.estimator, self.columns)

    def predict(self, rows: list[list[Any]]) -> Prediction:
        frame = input_frame(rows, self.columns, self.dtypes)
        if not self._free.acquire(blocking=False):
            raise PredictTimeout("the model's earlier calls are still running past their limit")
        try:
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
        except Exception as exc:
            refused = refusal(exc)
            if refused is not None:
                raise refused from None
            raise ModelRaised(f"raised {type(exc).__name__}", self.answered) from exc
        try:
            values = as_values(output, len(rows))
        except ValueError as exc:
            raise ModelRaised("gave no value per row", self.answered) from exc
        self.answered = True
        return Prediction(values, None)


def schema_dtypes(model: Any, columns: Sequence[str]) -> dict[str, np.dtype[Any]]:
    """The dtype of each numeric column of the model's MLflow input schema, by column name (a
    column without a name is f0, f1, ... by position, as the signature names it)."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None or schema.is_tensor_spec():
        return {}
    dtypes: dict[str, np.dtype[Any]] = {}
    for position, col in enumerate(schema.inputs):
        name = col.name or f"f{position}"
        dtype = NUMERIC_DTYPES.get(str(getattr(col.type, "name", "")))
        if dtype is not None and name in columns:
            dtypes[name] = dtype
    return dtypes


def input_frame(
    rows: list[list[Any]], columns: list[str], dtypes: dict[str, np.dtype[Any]]
) -> pd.DataFrame:
    """The rows as the DataFrame the model gets, each numeric column cast to its dtype. An
    integer column holding a missing value stays float (MLflow's enforcement refuses it)."""
    frame = pd.DataFrame(rows, columns=columns)
    for name, dtype in dtypes.items():
        column = frame[name]
        if column.dtype == dtype:
            continue
        if dtype.kind == "i":
            if column.isna().any():
                continue
            limits = np.iinfo(dtype)
            inside = column.between(limits.min, limits.max).to_numpy(dtype=bool)
            if not inside.all():
                row = int(np.argmin(inside))
                raise InvalidInput(
                    f"row {row}, column '{name[:64]}': an integer out of the range of this "
                    f"model's {dtype.itemsize * 8}-bit column"
                )
        frame[name] = column.astype(dtype)
    return frame


def refusal(exc: Exception) -> ModelgateError | None:
    """The error that a call's exception means for its rows, or None when it is the model's
    own failure: its schema enforcement (or another MlflowException that MLflow answers 400)
    and a ValueError or OverflowError refuse the rows; a ModelgateError stays itself."""
    if isinstance(exc, ModelgateError):
        return exc
    if isinstance(exc, ValueError | OverflowError):
        return InvalidInput(f"the model refused these rows ({type(exc).__name__})")
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException) and exc.get_http_status_code() == 400:
        if getattr(exc, "error_class", None) == SCHEMA_ENFORCEMENT_FAILED:
            return InvalidInput("the rows do not fit the model's input schema")
        return InvalidInput("the model refused these rows (MlflowException)")
    return None


def as_values(output: Any, n_rows: int) -> list[Any]:
    """A pyfunc's output (array, Series, DataFrame, list, dict of columns) as one JSON-safe
    value per row: a DataFrame's row is a list, each column keeping its own type (an int column
    stays ints beside a float one); a dict of columns gives one dict per row."""
    if isinstance(output, pd.DataFrame):
        if output.shape[1] != 1:
            columns = [output.iloc[:, j].tolist() for j in range(output.shape[1])]
            return _counted([list(row) for row in zip(*columns, strict=True)], n_rows)
        output = output.iloc[:, 0]
    if isinstance(output, dict):
        return _counted(_records(output, n_rows), n_rows)
    values = np.asarray(output, dtype=object)
    if values.ndim == 0:
        raise ValueError("the model answered one value, not one per row")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return _counted(list(values), n_rows)


def _records(columns: dict[Any, Any], n_rows: int) -> list[Any]:
    """A dict of columns (MLflow renders it as it is) as one dict per row."""
    lists = {str(k): np.asarray(v, dtype=object).reshape(-1).tolist() for k, v in columns.items()}
    if any(len(v) != n_rows for v in lists.values()):
        raise ValueError(f"the model answered columns of other lengths than its {n_rows} rows")
    return [{k: v[i] for k, v in lists.items()} for i in range(n_rows)]


def _counted(values: list[Any], n_rows: int) -> list[Any]:
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
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
