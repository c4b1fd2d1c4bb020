"""Resolve a model version, download its artifact through the server, verify it, then load it.

Nothing is deserialised before the artifact's SHA-256 matches its recorded digest (recorded at
registration, by `adopt`, or on first use: `registry.trust`): the MLmodel file, which names the
flavor, the format and skops' trusted types, is covered too. `registry.flavors` loads the flavor.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow.models import Model

from kernel.errors import ArtifactRejected, RegistryError, RegistryUnavailable
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.flavors import choose_flavor, load_native, read_flavors
from registry.model import LoadedModel
from registry.onnx_twin import VERIFIED, fetch_onnx, onnx_status
from registry.signature import Signature, signature_from_mlflow
from registry.trust import settle_digest, vouched
from runtime.base import NativeRuntime

logger = logging.getLogger(__name__)


def load_version(
    registry: Registry,
    name: str,
    version: int,
    options: LoadOptions | None = None,
) -> LoadedModel:
    """Download, verify and load one registered version; raises a RegistryError otherwise.

    The digest is checked (or, on first use, recorded: `registry.trust`) before anything is
    deserialised. With `options.use_twin`, a version whose ONNX twin was verified
    (`modelgate optimize`) answers with onnxruntime; when that file cannot be fetched or fails
    its checksum, the native runtime answers.
    """
    options = options or LoadOptions()
    work_dir = options.work_dir
    model_version = registry.version(name, version)
    tags = dict(model_version.tags or {})
    with downloaded(registry, name, version, work_dir) as local:
        digest = settle_digest(registry, name, version, local, tags, options)
        try:
            flavors = read_flavors(local)
            flavor = choose_flavor(flavors, options)
        except ArtifactRejected as exc:
            raise ArtifactRejected(f"model '{name}' version {version}: {exc.message}") from None
        native = _load_native(name, version, local, flavors, flavor, options, vouched(tags))
        try:
            signature = _signature(local, native)
        except ArtifactRejected:
            raise
        except Exception as exc:
            raise ArtifactRejected(
                f"model '{name}' version {version} has no usable input signature: "
                f"{getattr(exc, 'message', type(exc).__name__)}"
            ) from exc
        size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
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
        native=native,
        digest=digest,
        metrics=metrics,
        twin_status=onnx_status(model_version),
        artifact_bytes=size,
    )
    if not options.use_twin:
        return model
    if model.twin_status != VERIFIED:
        return model
    try:
        twin = fetch_onnx(registry.tracking_uri, model_version, model.classes, work_dir)
    except RegistryError as exc:
        logger.warning(
            "model %s version %s stays on %s: %s", name, version, native.name, exc.message
        )
        # A download that failed is tried again at a later load (the gateway's next refresh);
        # a file that fails its checksum or that onnxruntime cannot open is refused for good.
        verdict = "unavailable" if isinstance(exc, RegistryUnavailable) else "refused"
        return dataclasses.replace(model, twin_status=f"{verdict}: {exc.message}")
    return dataclasses.replace(model, twin=twin)


def _load_native(
    name: str,
    version: int,
    local: Path,
    flavors: dict[str, Any],
    flavor: str,
    options: LoadOptions,
    vouched: bool,
) -> NativeRuntime:
    """The flavor's runtime; every failure is a lasting ArtifactRejected with its reason."""
    skew = _sklearn_skew(flavors)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version warnings are ours to tell, once, below
            native = load_native(local, flavors, flavor, options, vouched)
    except ArtifactRejected as exc:
        raise ArtifactRejected(f"model '{name}' version {version}: {exc.message}") from None
    except Exception as exc:  # untrusted types, version skew, a broken file: all "refused"
        logger.error(
            "model %s version %s could not be loaded: %s", name, version, type(exc).__name__
        )
        reason = f"{type(exc).__name__}"
        if skew is not None:
            reason = f"it was saved with scikit-learn {skew[0]}, this is {skew[1]} ({reason})"
        raise ArtifactRejected(
            f"model '{name}' version {version} could not be loaded: {reason}"
        ) from exc
    if skew is not None:
        logger.warning(
            "model %s version %s was saved with scikit-learn %s and loads under %s: "
            "retrain or re-register it to match",
            name,
            version,
            *skew,
            extra={"model": name, "model_version": version},
        )
    return native


def _sklearn_skew(flavors: dict[str, Any]) -> tuple[str, str] | None:
    """(saved, installed) scikit-learn versions when they differ, else None."""
    saved = str((flavors.get("sklearn") or {}).get("sklearn_version") or "")
    if not saved:
        return None
    import sklearn

    return None if saved == sklearn.__version__ else (saved, sklearn.__version__)


def _signature(local: Path, native: NativeRuntime) -> Signature:
    """The MLmodel signature, or the model's own feature names; binds the runtime to it."""
    mlmodel = Model.load(str(local))
    signature = signature_from_mlflow(
        mlmodel.signature.inputs if mlmodel.signature else None,
        native.n_features,
        feature_names=native.feature_names,
        missing_ok=native.takes_missing,
    )
    native.bind(signature.names, signature.all_numeric)
    return signature


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
