"""Register a fitted estimator as a new model version: skops artifact, signature, digest, alias."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.models import infer_signature

from kernel.errors import AliasNotFound
from registry.client import Registry
from registry.digest import directory_digest
from registry.loader import downloaded
from registry.trust import REGISTERED, record
from runtime.sklearn import fitted_on_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """What registration produced."""

    name: str
    version: int
    run_id: str
    digest: str
    alias_set: bool
    onnx_status: str = "not converted"


def publish(
    registry: Registry,
    estimator: Any,
    *,
    name: str,
    experiment: str,
    example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    alias: str | None,
    onnx: bool = True,
) -> Published:
    """Log `estimator` in a run, register it under `name`, record its SHA-256, give it a
    verified ONNX twin where possible (`onnx`), set `alias` if that alias is not set yet, and
    return the new version. The twin comes before the alias, so the first load finds it."""
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    mlflow.set_experiment(experiment)
    # skops refuses types it does not know; list exactly those this estimator holds.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    output = estimator.predict(
        example.head(5) if fitted_on_names(estimator) else example.head(5).values
    )
    signature = infer_signature(example, output)
    with mlflow.start_run() as run, warnings.catch_warnings():
        # MLflow predicts its input example as a frame; positional models warn about the names.
        warnings.filterwarnings("ignore", message="X has feature names", category=UserWarning)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=example.head(2),
            serialization_format="skops",
            skops_trusted_types=trusted,
            registered_model_name=name,
            # MLflow's own list for this flavor: named, it skips inferring them, which runs
            # the model in a subprocess (seconds per version).
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    version = int(info.registered_model_version)
    digest = record_digest(registry, name, version)
    onnx_status = "not converted"
    if onnx:
        onnx_status = _optimize(registry, name, version, example)
    alias_set = False
    if alias:
        try:
            registry.alias_version(name, alias)
        except AliasNotFound:
            registry.set_alias(name, alias, version)
            alias_set = True
    logger.info("registered %s version %s (alias set: %s)", name, version, alias_set)
    return Published(name, version, run.info.run_id, digest, alias_set, onnx_status)


def _optimize(registry: Registry, name: str, version: int, example: pd.DataFrame) -> str:
    """The ONNX status of the new version; a failed conversion never fails the registration."""
    from registry.optimize import optimize_version

    try:
        numeric = example.head(50).to_numpy(dtype="float64")
    except (TypeError, ValueError):
        numeric = None
    try:
        return optimize_version(registry, name, version, example=numeric).status
    except Exception as exc:  # logged; scikit-learn serves the version as before
        logger.warning("ONNX conversion of %s version %s failed: %s", name, version, exc)
        return f"failed: {type(exc).__name__}"


def record_digest(registry: Registry, name: str, version: int) -> str:
    """Fetch a just-registered version through the server and record its SHA-256 as a tag.

    The digest is of what the server holds right after registration, before any alias points
    at the version; it detects any later change to the stored artifact.
    """
    with downloaded(registry, name, version) as local:
        digest = directory_digest(local)
    record(registry, name, version, digest, REGISTERED)
    return digest
