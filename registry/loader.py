"""Resolve a model version, download its artifact through the server, verify it, then load it.

Nothing is deserialised before the artifact's SHA-256 matches the digest recorded at
registration: the MLmodel file (which names the format and skops' trusted types) is covered too.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.artifacts
import skops.io
import yaml
from mlflow.models import Model

from kernel.errors import ArtifactRejected, RegistryError, RegistryUnavailable
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.digest import DIGEST_TAG, digest_matches
from registry.model import LoadedModel
from registry.onnx_twin import VERIFIED, fetch_onnx, onnx_status
from registry.signature import signature_from_mlflow
from runtime.sklearn import SklearnRuntime

logger = logging.getLogger(__name__)


def load_version(
    registry: Registry,
    name: str,
    version: int,
    options: LoadOptions | None = None,
) -> LoadedModel:
    """Download, verify and load one registered version; raises a RegistryError otherwise.

    With `options.use_twin`, a version whose ONNX twin was verified (`modelgate optimize`)
    answers with onnxruntime; when that file cannot be fetched or fails its checksum, the native
    runtime (scikit-learn) answers.
    """
    options = options or LoadOptions()
    work_dir = options.work_dir
    model_version = registry.version(name, version)
    expected = (model_version.tags or {}).get(DIGEST_TAG)
    if not expected:
        raise ArtifactRejected(f"model '{name}' version {version} has no recorded digest")
    with downloaded(registry, name, version, work_dir) as local:
        if not digest_matches(local, expected):
            logger.error("artifact digest mismatch for %s version %s: refused", name, version)
            raise ArtifactRejected(
                f"model '{name}' version {version} does not match its recorded SHA-256"
            )
        try:
            estimator = _deserialise(local, options.allow_pickle, options.trusted_prefixes)
            mlmodel = Model.load(str(local))
            signature = signature_from_mlflow(
                mlmodel.signature.inputs if mlmodel.signature else None,
                getattr(estimator, "n_features_in_", None),
            )
        except ArtifactRejected:
            raise
        except Exception as exc:  # untrusted types, version skew, a broken file: all "refused"
            logger.error(
                "model %s version %s could not be loaded: %s", name, version, type(exc).__name__
            )
            raise ArtifactRejected(f"model '{name}' version {version} could not be loaded") from exc
    metrics: dict[str, float] = {}
    if model_version.run_id:
        try:
            metrics = registry.run_metrics(model_version.run_id)
        except RegistryError:
            logger.warning("no training metrics for %s version %s", name, version)
    model = LoadedModel(
        name=name,
        version=int(version),
        run_id=model_version.run_id,
        signature=signature,
        native=SklearnRuntime(estimator, signature.names, signature.all_numeric),
        digest=expected,
        metrics=metrics,
        twin_status=onnx_status(model_version),
    )
    if not options.use_twin:
        return model
    if model.twin_status != VERIFIED:
        return model
    try:
        twin = fetch_onnx(registry.tracking_uri, model_version, model.classes, work_dir)
    except RegistryError as exc:
        logger.warning("model %s version %s stays on scikit-learn: %s", name, version, exc.message)
        # A download that failed is tried again at a later load (the gateway's next refresh);
        # a file that fails its checksum or that onnxruntime cannot open is refused for good.
        verdict = "unavailable" if isinstance(exc, RegistryUnavailable) else "refused"
        return dataclasses.replace(model, twin_status=f"{verdict}: {exc.message}")
    return dataclasses.replace(model, twin=twin)


def _deserialise(local: Path, allow_pickle: bool, trusted_prefixes: tuple[str, ...]) -> Any:
    flavor = _sklearn_flavor(local)
    path = local / flavor["pickled_model"]
    fmt = flavor.get("serialization_format", "pickle")
    if fmt == "skops":
        # The artifact names the types it wants trusted; whoever can register a model can write
        # that list, so only types under the configured module prefixes are ever trusted.
        trusted = [str(t) for t in flavor.get("skops_trusted_types") or []]
        refused = [t for t in trusted if not t.startswith(trusted_prefixes)]
        if refused:
            raise ArtifactRejected(
                f"the artifact asks to trust types outside the allowed modules: {refused[:3]}"
            )
        return skops.io.load(path, trusted=trusted)
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


@contextmanager
def downloaded(
    registry: Registry, name: str, version: int, work_dir: Path | None = None
) -> Iterator[Path]:
    """A version's artifact directory, fetched through the server, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix=f"modelgate-{name}-{version}-", dir=work_dir))
    try:
        uri = registry.download_uri(name, version)
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(scratch), tracking_uri=registry.tracking_uri
            )
        except Exception as exc:  # MLflow raises many kinds here; all mean "could not fetch".
            logger.warning("artifact download failed for %s/%s: %s", name, version, type(exc))
            raise RegistryUnavailable(
                f"could not download model '{name}' version {version}"
            ) from exc
        yield Path(local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
