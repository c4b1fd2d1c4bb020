"""Resolve a model version, download its artifact through the server, verify it, then load it.

Nothing is deserialised before the artifact's SHA-256 matches the digest recorded at
registration: the MLmodel file (which names the format and skops' trusted types) is covered too.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
import skops.io
import yaml
from mlflow.models import Model

from registry.client import Registry
from registry.digest import DIGEST_TAG, digest_matches, directory_digest
from registry.errors import ArtifactRejected, RegistryError, RegistryUnavailable
from registry.model import LoadedModel
from registry.signature import signature_from_mlflow

logger = logging.getLogger(__name__)


def load_version(
    registry: Registry,
    name: str,
    version: int,
    work_dir: Path | None = None,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Download, verify and load one registered version; raises a RegistryError otherwise."""
    model_version = registry.version(name, version)
    expected = (model_version.tags or {}).get(DIGEST_TAG)
    if not expected:
        raise ArtifactRejected(f"model '{name}' version {version} has no recorded digest")
    uri = registry.download_uri(name, version)
    scratch = Path(tempfile.mkdtemp(prefix=f"modelgate-{name}-{version}-", dir=work_dir))
    try:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(scratch), tracking_uri=registry.tracking_uri
                )
            )
        except Exception as exc:  # MLflow raises many kinds here; all mean "could not fetch".
            logger.warning("artifact download failed for %s/%s: %s", name, version, type(exc))
            raise RegistryUnavailable(
                f"could not download model '{name}' version {version}"
            ) from exc
        if not digest_matches(local, expected):
            logger.error("artifact digest mismatch for %s version %s: refused", name, version)
            raise ArtifactRejected(
                f"model '{name}' version {version} does not match its recorded SHA-256"
            )
        estimator = _deserialise(local, allow_pickle)
        mlmodel = Model.load(str(local))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    signature = signature_from_mlflow(
        mlmodel.signature.inputs if mlmodel.signature else None,
        getattr(estimator, "n_features_in_", None),
    )
    metrics: dict[str, float] = {}
    if model_version.run_id:
        try:
            metrics = registry.run_metrics(model_version.run_id)
        except RegistryError:
            logger.warning("no training metrics for %s version %s", name, version)
    return LoadedModel(
        name=name,
        version=int(version),
        run_id=model_version.run_id,
        signature=signature,
        estimator=estimator,
        digest=expected,
        metrics=metrics,
    )


def _deserialise(local: Path, allow_pickle: bool) -> Any:
    flavor = _sklearn_flavor(local)
    path = local / flavor["pickled_model"]
    fmt = flavor.get("serialization_format", "pickle")
    if fmt == "skops":
        # The trusted list comes from MLmodel, which the verified digest covers.
        return skops.io.load(path, trusted=list(flavor.get("skops_trusted_types") or []))
    if fmt in ("pickle", "cloudpickle") and allow_pickle:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - verified artifact, opt-in setting
    raise ArtifactRejected(f"serialization format '{fmt}' is not allowed")


def _sklearn_flavor(local: Path) -> dict[str, Any]:
    try:
        with (local / "MLmodel").open() as handle:
            flavors = yaml.safe_load(handle).get("flavors", {})
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ArtifactRejected("the artifact has no readable MLmodel file") from exc
    flavor = flavors.get("sklearn")
    if not isinstance(flavor, dict) or "pickled_model" not in flavor:
        raise ArtifactRejected("the artifact is not an MLflow scikit-learn model")
    return flavor


def record_digest(registry: Registry, name: str, version: int, work_dir: Path | None = None) -> str:
    """Fetch a just-registered version through the server and record its SHA-256 as a tag."""
    scratch = Path(tempfile.mkdtemp(prefix="modelgate-digest-", dir=work_dir))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=registry.download_uri(name, version),
                dst_path=str(scratch),
                tracking_uri=registry.tracking_uri,
            )
        )
        digest = directory_digest(local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    registry.set_version_tag(name, version, DIGEST_TAG, digest)
    return digest
