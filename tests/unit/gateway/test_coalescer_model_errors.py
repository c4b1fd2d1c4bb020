"""A model whose own code raises on one request's rows fails that request alone: the call is
split, every other request of it gets its answer, and the guilty rows are blamed (InvalidInput)
only when they make the model raise again, alone, while it answers others
(dataplane/coalescer.py, `run_batch` and `blamed`).

The model is a real MLflow pyfunc in a real `LoadedModel` (runtime/pyfunc.py); requests are
coalesced as under load, by a maximum wait that gathers the requests started together.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from gateway.dataplane.coalescer import Coalescer
from kernel.errors import InvalidInput
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from runtime.base import ModelRaised, Prediction
from runtime.pyfunc import PyfuncRuntime

MARKER = 13.0


class Marked(PythonModel):
    """Twice `x`; KeyError on the marker, RuntimeError on everything once `broken`. Records the
    rows of every call (the class is pickled by reference, so the loaded model shares it)."""

    calls: ClassVar[list[list[float]]] = []
    broken: ClassVar[bool] = False

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        Marked.calls.append(model_input["x"].tolist())
        if Marked.broken:
            raise RuntimeError("broken")
        if (model_input["x"] == MARKER).any():
            raise KeyError("marker")
        return model_input["x"] * 2


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("marked") / "m"
    frame = pd.DataFrame({"x": [1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=Marked(),
            signature=infer_signature(frame, np.array([2.0])),
            pip_requirements=[],
        )
    return path


@pytest.fixture
def model(saved: Path) -> LoadedModel:
    """A freshly loaded version: its runtime has answered nothing yet."""
    Marked.calls.clear()
    Marked.broken = False
    runtime = PyfuncRuntime(mlflow.pyfunc.load_model(str(saved)), timeout_seconds=10)
    runtime.bind(("x",), True)
    return LoadedModel("m", 1, None, Signature((Feature("x", "double"),)), native=runtime)


def _together(model: LoadedModel, requests: list[list[list[float]]]) -> list[Any]:
    """The outcomes of `requests` started together, coalesced into one call by the wait."""
    coalescer = Coalescer(threads=1, max_batch_rows=100, max_wait_seconds=0.2, max_pending=100)

    async def scenario() -> list[Any]:
        tasks = [asyncio.create_task(coalescer.predict(model, rows)) for rows in requests]
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        return asyncio.run(scenario())
    finally:
        coalescer.close()


def test_one_request_that_makes_the_model_raise_fails_alone(model: LoadedModel) -> None:
    good, bad, other = _together(model, [[[1.0]], [[MARKER], [2.0]], [[3.0]]])
    assert good == Prediction([2.0], None) and other == Prediction([6.0], None)
    assert isinstance(bad, InvalidInput)
    assert bad.message == (
        "the model raised KeyError on these rows, and answers others: check them against what "
        "the model expects"
    )
    assert "13" not in bad.message
    # One call of the three, then each alone.
    assert Marked.calls == [[1.0, MARKER, 2.0, 3.0], [1.0], [MARKER, 2.0], [3.0]]


def test_a_lone_request_is_tried_twice_and_blamed_once_the_model_has_answered(
    model: LoadedModel,
) -> None:
    (first,) = _together(model, [[[MARKER]]])
    # The model has answered nothing: nothing shows that it works at all, a 500.
    assert isinstance(first, ModelRaised) and not first.answered
    assert Marked.calls == [[MARKER], [MARKER]]
    assert _together(model, [[[1.0]]]) == [Prediction([2.0], None)]
    (again,) = _together(model, [[[MARKER]]])
    assert isinstance(again, InvalidInput)


def test_a_broken_model_fails_every_request_as_its_own_error(model: LoadedModel) -> None:
    Marked.broken = True
    outcomes = _together(model, [[[1.0]], [[2.0]]])
    assert all(isinstance(o, ModelRaised) and o.what == "raised RuntimeError" for o in outcomes)


def test_another_error_in_a_call_of_several_is_split_too() -> None:
    class Buggy:
        name, version = "b", 1
        runtime = type("R", (), {"name": "sklearn", "inline_rows": 0})()

        def runtime_for(self, rows: Any) -> Any:
            return self.runtime

        def predict(self, rows: list[list[Any]]) -> Prediction:
            if any(row[0] < 0 for row in rows):
                raise RuntimeError("bug")
            return Prediction([row[0] for row in rows], None)

    good, bad = _together(Buggy(), [[[1]], [[-1]]])  # type: ignore[arg-type]
    assert good == Prediction([1], None)
    assert type(bad) is RuntimeError  # a bug stays a bug (a 500), never blamed on the rows
