"""`OnnxRuntime`: an ONNX graph in an onnxruntime session, answering like the native runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.base import Prediction

#: Tree operators sum their votes in float32 (1.0 comes out as 0.99999905 after 100 trees);
#: rounded to this many decimals, probabilities read like scikit-learn's, 5e-6 at most away,
#: inside the 1e-5 that verification demands of the final output. Graphs without trees compute
#: in float64 and are not rounded.
PROBABILITY_DECIMALS = 5
_FLOAT32_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


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
        import onnx
        import onnxruntime as ort  # loaded only where ONNX serves
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        #: What session.run raises on rows it cannot score (no common base class).
        self._refusals: tuple[type[Exception], ...] = (
            ort_state.Fail,
            ort_state.InvalidArgument,
            ort_state.RuntimeException,
        )

        nodes = onnx.load_from_string(graph).graph.node
        float32_scores = any(node.op_type in _FLOAT32_OPS for node in nodes)
        self.probability_decimals = PROBABILITY_DECIMALS if float32_scores else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.classes = classes

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Labels (or regression values) and, for classifiers, probabilities of float64 rows."""
        try:
            outputs = self.session.run(None, {self.input_name: np.asarray(rows, dtype=np.float64)})
        except self._refusals as exc:
            # Rows passed the signature, so the graph refusing them is about their values, as
            # scikit-learn's ValueError is: the caller answers it as bad input, not a 500.
            raise ValueError(f"onnxruntime refused the rows: {type(exc).__name__}") from exc
        if self.classes is None:
            return Prediction(np.asarray(outputs[0], dtype=np.float64).ravel().tolist(), None)
        labels = np.asarray(outputs[0]).ravel().tolist()
        proba = np.asarray(outputs[1], dtype=np.float64)
        if self.probability_decimals is not None:
            proba = np.round(proba, self.probability_decimals)
        return Prediction(labels, proba.tolist())
