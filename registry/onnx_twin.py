"""A version's ONNX twin in the registry: its tags, and `fetch_onnx`, which loads the verified
file (see `registry.optimize`) after checking its SHA-256 against the one recorded then."""

from __future__ import annotations

import hashlib
import hmac
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow.entities.model_registry import ModelVersion

from kernel.errors import ArtifactRejected, RegistryUnavailable
from runtime.onnx import OnnxRuntime

logger = logging.getLogger(__name__)

#: Version tags written by `modelgate optimize`.
ONNX_STATUS_TAG = "modelgate.onnx.status"
ONNX_SHA_TAG = "modelgate.onnx.sha256"
ONNX_ARTIFACT_TAG = "modelgate.onnx.artifact"
ONNX_REPORT_TAG = "modelgate.onnx.verification"
VERIFIED = "verified"


def onnx_status(model_version: ModelVersion) -> str:
    """What the version's tags say of its ONNX twin ("not converted" when nothing)."""
    return str((model_version.tags or {}).get(ONNX_STATUS_TAG) or "not converted")


def fetch_onnx(
    tracking_uri: str, model_version: ModelVersion, classes: list[Any] | None, work_dir: Path | None
) -> OnnxRuntime:
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
        return OnnxRuntime(graph, classes)
    except Exception as exc:  # onnxruntime refusing the file
        raise ArtifactRejected("onnxruntime cannot open the ONNX file") from exc
