"""A pyfunc gets the columns of its input schema's dtypes, and what its code raises is sorted:
a refusal of the rows is InvalidInput, anything else ModelRaised (runtime/pyfunc.py).

The models are real MLflow pyfuncs, saved with `mlflow.pyfunc.save_model` and loaded with
`mlflow.pyfunc.load_model`, so MLflow's own schema enforcement runs on every call.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from kernel.errors import InvalidInput
from runtime.base import ModelRaised
from runtime.pyfunc import PyfuncRuntime, as_values

#: The marker a test model raises KeyError on.
MARKER = 13.0


class Typed(PythonModel):
    """Answers `small * 2 + count` for float32 `small` and int32 `count`; raises KeyError on
    the marker and RuntimeError on a negative count."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        assert model_input["small"].dtype == np.float32
        assert model_input["count"].dtype == np.int32
        if (model_input["small"] == MARKER).any():
            raise KeyError("marker")
        if (model_input["count"] < 0).any():
            raise RuntimeError("negative")
        return model_input["small"].astype("float64") * 2 + model_input["count"]


def _save(path: Path, model: Any, frame: pd.DataFrame, output: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=model,
            signature=infer_signature(frame, output),
            pip_requirements=[],
        )
        return mlflow.pyfunc.load_model(str(path))


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> PyfuncRuntime:
    frame = pd.DataFrame(
        {"small": np.array([1.5], dtype=np.float32), "count": np.array([1], dtype=np.int32)}
    )
    loaded = _save(tmp_path_factory.mktemp("typed") / "m", Typed(), frame, np.array([4.0]))
    runtime = PyfuncRuntime(loaded, timeout_seconds=10)
    runtime.bind(("small", "count"), True)
    return runtime


def test_float32_and_int32_columns_reach_the_model_in_their_dtypes(typed: PyfuncRuntime) -> None:
    answer = typed.predict([[1.5, 1], [0.1, 2], [2.0, 3.0]])  # an integral float fits an int
    assert answer.probabilities is None
    # 0.1 as float32, as MLflow's scoring server casts it.
    assert answer.labels == [4.0, float(np.float32(0.1)) * 2 + 2, 7.0]


def test_an_integer_out_of_the_columns_range_is_refused_not_wrapped(typed: PyfuncRuntime) -> None:
    with pytest.raises(InvalidInput) as refused:
        typed.predict([[1.5, 1], [1.5, 2**31]])
    assert refused.value.message.startswith("row 1, column 'count': an integer out of the range")
    assert str(2**31) not in refused.value.message  # the value is never echoed


def test_a_missing_integer_is_refused_by_mlflows_schema_enforcement(typed: PyfuncRuntime) -> None:
    with pytest.raises(InvalidInput) as refused:
        typed.predict([[1.5, np.nan]])
    assert refused.value.message == "the rows do not fit the model's input schema"


def test_what_the_models_code_raises_is_model_raised(typed: PyfuncRuntime) -> None:
    typed.predict([[1.0, 1]])
    for row, what in (([MARKER, 1], "raised KeyError"), ([1.0, -1], "raised RuntimeError")):
        with pytest.raises(ModelRaised) as raised:
            typed.predict([row])
        assert raised.value.what == what and raised.value.answered
        assert "marker" not in str(raised.value)  # the message of the model's error stays out


def test_a_fresh_runtime_has_answered_nothing(tmp_path: Path) -> None:
    class Broken(PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            raise RuntimeError("broken")

    frame = pd.DataFrame({"x": [1.0]})
    runtime = PyfuncRuntime(_save(tmp_path / "m", Broken(), frame, np.array([1.0])), 10)
    runtime.bind(("x",), True)
    with pytest.raises(ModelRaised) as raised:
        runtime.predict([[1.0]])
    assert not raised.value.answered


def test_a_value_error_of_the_model_refuses_the_rows() -> None:
    class Picky:
        def predict(self, frame: pd.DataFrame) -> Any:
            raise ValueError("no")

    runtime = PyfuncRuntime(Picky(), 10)
    runtime.bind(("x",), True)
    with pytest.raises(InvalidInput, match=r"the model refused these rows \(ValueError\)"):
        runtime.predict([[1.0]])


def test_a_data_frame_keeps_each_columns_type_and_dicts_give_records() -> None:
    frame = pd.DataFrame({"n": np.arange(2), "v": [1.5, 2.5], "s": ["a", "b"]})
    assert as_values(frame, 2) == [[0, 1.5, "a"], [1, 2.5, "b"]]
    assert all(type(row[0]) is int for row in as_values(frame, 2))
    columns = {"n": np.arange(2), "v": np.array([3.0, 5.0])}
    assert as_values(columns, 2) == [{"n": 0, "v": 3.0}, {"n": 1, "v": 5.0}]
    assert as_values([{"n": np.int64(0)}, {"n": 1}], 2) == [{"n": 0}, {"n": 1}]
    with pytest.raises(ValueError, match="other lengths"):
        as_values({"n": [1, 2, 3]}, 2)
