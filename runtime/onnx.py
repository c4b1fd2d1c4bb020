"""`OnnxRuntime`: an ONNX graph in an onnxruntime session, answering like the native runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.base import PROBABILITY_DECIMALS, Prediction


class OnnxRuntime:
    """One session, one thread per call: the callers' thread pool or batcher is the parallelism.

    Calls take tens of microseconds, less than a cache round trip or a hop to a thread: small
    ones run on the event loop, and its answers are not cached.
    """

    name = "onnx"
    #: Calls of at most this many rows run on the event loop (tens of microseconds).
    inline_rows = 64
    worth_caching = False

    def __init__(self, graph: bytes, classes: list[Any] | None) -> None:
        import onnxruntime as ort  # loaded only where ONNX serves
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        #: What session.run raises on rows it cannot score (no common base class).
        self._refusals: tuple[type[Exception], ...] = (
            ort_state.Fail,
            ort_state.InvalidArgument,
            ort_state.RuntimeException,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.classes = classes

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Labels (or regression values) and, for classifiers, probabilities of float64 rows.

        The labels are the graph's (outputs[0]); the probabilities (outputs[1], a tensor) are
        rounded to PROBABILITY_DECIMALS, as every runtime's are: tree operators sum in float32
        (1.0 comes out as 0.99999905 after 100 trees)."""
        try:
            outputs = self.session.run(None, {self.input_name: np.asarray(rows, dtype=np.float64)})
        except self._refusals as exc:
            # Rows passed the signature, so the graph refusing them is about their values, as
            # scikit-learn's ValueError is: the caller answers it as bad input, not a 500.
            raise ValueError(f"onnxruntime refused the rows: {type(exc).__name__}") from exc
        if self.classes is None:
            return Prediction(np.asarray(outputs[0], dtype=np.float64).ravel().tolist(), None)
        labels = np.asarray(outputs[0]).ravel().tolist()
        proba = np.round(np.asarray(outputs[1], dtype=np.float64), PROBABILITY_DECIMALS)
        return Prediction(labels, proba.tolist())
