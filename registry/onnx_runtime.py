"""`OnnxModel`: an ONNX graph in an onnxruntime session, answering like `LoadedModel` does.

`fetch_onnx` loads a version's verified ONNX file (see `registry.optimize`) after checking its
SHA-256 against the one recorded when it was verified.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
import numpy as np
from mlflow.entities.model_registry import ModelVersion

from registry.errors import ArtifactRejected, RegistryUnavailable

logger = logging.getLogger(__name__)

#: Version tags written by `modelgate optimize`.
ONNX_STATUS_TAG = "modelgate.onnx.status"
ONNX_SHA_TAG = "modelgate.onnx.sha256"
ONNX_ARTIFACT_TAG = "modelgate.onnx.artifact"
ONNX_REPORT_TAG = "modelgate.onnx.verification"
VERIFIED = "verified"

#: Tree operators sum their votes in float32 (1.0 comes out as 0.99999905 after 100 trees);
#: rounded to this many decimals, probabilities read like scikit-learn's, 5e-6 at most away,
#: inside the 1e-5 that verification demands of the final output. Graphs without trees compute
#: in float64 and are not rounded.
PROBABILITY_DECIMALS = 5
_FLOAT32_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


class OnnxModel:
    """One session, one thread per call: the callers' thread pool or batcher is the parallelism."""

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
        self.float32_scores = any(node.op_type in _FLOAT32_OPS for node in nodes)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.classes = classes

    def run(self, rows: np.ndarray) -> tuple[list[Any], list[list[float]] | None]:
        """Labels (or regression values) and, for classifiers, probabilities of float64 rows."""
        try:
            outputs = self.session.run(None, {self.input_name: rows})
        except self._refusals as exc:
            # Rows passed the signature, so the graph refusing them is about their values, as
            # scikit-learn's ValueError is: the caller answers it as bad input, not a 500.
            raise ValueError(f"onnxruntime refused the rows: {type(exc).__name__}") from exc
        if self.classes is None:
            return np.asarray(outputs[0], dtype=np.float64).ravel().tolist(), None
        labels = np.asarray(outputs[0]).ravel().tolist()
        proba = np.asarray(outputs[1], dtype=np.float64)
        if self.float32_scores:
            proba = np.round(proba, PROBABILITY_DECIMALS)
        return labels, proba.tolist()


def onnx_status(model_version: ModelVersion) -> str:
    """What the version's tags say of its ONNX twin ("not converted" when nothing)."""
    return str((model_version.tags or {}).get(ONNX_STATUS_TAG) or "not converted")


def fetch_onnx(
    tracking_uri: str, model_version: ModelVersion, classes: list[Any] | None, work_dir: Path | None
) -> OnnxModel:
    """Download the version's verified ONNX file, check its SHA-256, and open a session."""
    tags = model_version.tags or {}
    expected, artifact = tags.get(ONNX_SHA_TAG), tags.get(ONNX_ARTIFACT_TAG)
    if onnx_status(model_version) != VERIFIED or not expected or not artifact:
        raise ArtifactRejected("the version has no verified ONNX file")
    with tempfile.TemporaryDirectory(prefix="modelgate-onnx-", dir=work_dir) as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{model_version.run_id}/{artifact}",
                dst_path=scratch,
                tracking_uri=tracking_uri,
            )
        except Exception as exc:  # MLflow raises many kinds here; all mean "could not fetch"
            raise RegistryUnavailable("could not download the ONNX file") from exc
        graph = Path(local).read_bytes()
    if not hmac.compare_digest(hashlib.sha256(graph).hexdigest(), expected):
        raise ArtifactRejected("the ONNX file does not match its recorded SHA-256")
    try:
        return OnnxModel(graph, classes)
    except Exception as exc:  # onnxruntime refusing the file
        raise ArtifactRejected("onnxruntime cannot open the ONNX file") from exc
