"""`modelgate optimize`: give a registered version a verified ONNX twin, stored beside it.

The ONNX file is an artifact of the version's run (`modelgate-onnx/v<version>/model.onnx`), so
the version's own artifact, and the digest recorded for it, stay as they were. Version tags say
where the file is, its SHA-256 (checked before every load), and how the verification went.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernel.errors import ArtifactRejected
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.loader import downloaded, load_version
from registry.model import LoadedModel
from registry.onnx_boosters import refusal, takes_missing
from registry.onnx_convert import ConversionUnsupported, convert
from registry.onnx_twin import (
    ONNX_ARTIFACT_TAG,
    ONNX_REPORT_TAG,
    ONNX_SHA_TAG,
    ONNX_STATUS_TAG,
    VERIFIED,
)
from registry.onnx_verify import Verification, missing_rows, sample_rows, verify
from runtime.onnx import OnnxRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Optimized:
    """The outcome for one version: `status` is "verified", or why it stays on scikit-learn."""

    name: str
    version: int
    status: str
    verification: Verification | None
    sha256: str | None = None
    #: True when the version already had a verified twin and nothing was redone.
    kept: bool = False


def convert_and_verify(
    model: LoadedModel, example: np.ndarray | None
) -> tuple[bytes | None, Verification | None, str]:
    """(graph, verification, status) for a `LoadedModel`; graph None unless kept."""
    refused = refusal(model.estimator)
    if refused is not None:
        return None, None, f"unsupported: {refused}"
    if not model.signature.all_numeric:
        return None, None, "unsupported: non-numeric features"
    try:
        graph = convert(model.estimator, len(model.signature.features)).SerializeToString()
        twin = dataclasses.replace(model, twin=OnnxRuntime(graph, model.classes))
    except ConversionUnsupported as exc:
        return None, None, f"unsupported: {exc}"
    except Exception as exc:  # onnxruntime refusing the graph is a refusal, not a crash
        return None, None, f"unsupported: onnxruntime cannot run it ({type(exc).__name__})"
    rows, on_threshold = sample_rows(model.estimator, len(model.signature.features), example)
    missing = missing_rows(rows) if takes_missing(model.estimator) else None
    verification = verify(model, twin, rows, on_threshold, missing)
    if not verification.ok:
        return None, verification, f"rejected: {verification.reason}"
    return graph, verification, VERIFIED


def optimize_version(
    registry: Registry,
    name: str,
    version: int,
    *,
    example: np.ndarray | None = None,
    options: LoadOptions | None = None,
    force: bool = False,
) -> Optimized:
    """Convert, verify and (when verified) store the ONNX twin of a registered version.

    A version whose twin is already verified keeps it (`kept`), unless `force`.
    """
    if not force:
        tags = registry.version(name, version).tags or {}
        if tags.get(ONNX_STATUS_TAG) == VERIFIED and tags.get(ONNX_SHA_TAG):
            return Optimized(name, version, VERIFIED, None, tags[ONNX_SHA_TAG], kept=True)
    # The twin is made from the native runtime, so an existing twin is not loaded.
    base = options or LoadOptions()
    model = load_version(registry, name, version, dataclasses.replace(base, use_twin=False))
    if example is None:
        example = input_example(registry, name, version)
    graph, verification, status = convert_and_verify(model, example)
    sha256 = None
    if graph is not None:
        if not model.run_id:
            status = "unsupported: the version has no run to store the file in"
        else:
            sha256 = hashlib.sha256(graph).hexdigest()
            artifact = f"modelgate-onnx/v{version}"
            with tempfile.TemporaryDirectory(prefix="modelgate-onnx-") as scratch:
                path = Path(scratch) / "model.onnx"
                path.write_bytes(graph)
                registry.log_artifact(model.run_id, str(path), artifact)
            registry.set_version_tag(name, version, ONNX_ARTIFACT_TAG, f"{artifact}/model.onnx")
            registry.set_version_tag(name, version, ONNX_SHA_TAG, sha256)
    registry.set_version_tag(name, version, ONNX_STATUS_TAG, status[:500])
    if verification is not None:
        report = json.dumps(verification.as_dict())
        registry.set_version_tag(name, version, ONNX_REPORT_TAG, report)
    logger.info("ONNX for %s version %s: %s", name, version, status)
    return Optimized(name, version, status, verification, sha256)


def input_example(registry: Registry, name: str, version: int) -> np.ndarray | None:
    """The version's logged input example as float64 rows, when it has a numeric one."""
    from mlflow.models import Model

    with downloaded(registry, name, version) as local:
        try:
            example: Any = Model.load(str(local)).load_input_example(str(local))
            return None if example is None else np.asarray(example, dtype=np.float64)
        except (ValueError, TypeError, OSError, ArtifactRejected):
            return None
