"""A thin, typed face on MLflow's registry client: not-found and outage become our errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException, RestException

from kernel.errors import (
    AliasNotFound,
    ModelNotFound,
    RegistryError,
    RegistryUnavailable,
    VersionNotFound,
)
from kernel.settings import RegistrySettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def configure_mlflow_http(settings: RegistrySettings) -> None:
    """MLflow reads its HTTP timeout and retries only from the environment, so set them there."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(
        max(1, round(settings.registry_timeout_seconds))
    )
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.registry_max_retries)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


class Registry:
    """The registry operations Modelgate needs, with MLflow's errors turned into typed ones."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def registered_model(self, name: str) -> RegisteredModel:
        with _translated(lambda: ModelNotFound(f"model '{name}' is not registered")):
            return self.client.get_registered_model(name)

    def model_exists(self, name: str) -> bool:
        try:
            self.registered_model(name)
        except ModelNotFound:
            return False
        return True

    def version(self, name: str, version: int) -> ModelVersion:
        with _translated(lambda: self._missing_version(name, version)):
            return self.client.get_model_version(name, str(version))

    def registered_models(self) -> list[RegisteredModel]:
        """Every registered model, by name (all pages of the search)."""
        found: list[RegisteredModel] = []
        token: str | None = None
        with _translated(lambda: RegistryUnavailable("the registry did not answer")):
            while True:
                page = self.client.search_registered_models(
                    max_results=200, order_by=["name ASC"], page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    return found

    def versions(self, name: str) -> list[ModelVersion]:
        self.registered_model(name)
        with _translated(lambda: ModelNotFound(f"model '{name}' is not registered")):
            found = self.client.search_model_versions(f"name = '{_escape(name)}'")
        return sorted(found, key=lambda v: int(v.version))

    def alias_version(self, name: str, alias: str) -> int:
        """The version an alias points to now."""
        return int(self.alias_model_version(name, alias).version)

    def alias_model_version(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points to now, with its tags."""
        with _translated(lambda: self._missing_alias(name, alias)):
            return self.client.get_model_version_by_alias(name, alias)

    def aliases(self, name: str) -> dict[str, int]:
        model = self.registered_model(name)
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with _translated(lambda: self._missing_version(name, version)):
            self.client.set_registered_model_alias(name, alias, str(version))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with _translated(lambda: ModelNotFound(f"model '{name}' is not registered")):
            self.client.set_registered_model_tag(name, key, value)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        with _translated(lambda: self._missing_version(name, version)):
            self.client.set_model_version_tag(name, str(version), key, value)

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        with _translated(lambda: self._missing_version(name, version)):
            self.client.delete_model_version_tag(name, str(version), key)

    def download_uri(self, name: str, version: int) -> str:
        with _translated(lambda: self._missing_version(name, version)):
            return str(self.client.get_model_version_download_uri(name, str(version)))

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str) -> None:
        """Store a file among a run's artifacts (through the server's artifact proxy)."""
        with _translated(lambda: RegistryError(f"run '{run_id}' not found")):
            self.client.log_artifact(run_id, local_path, artifact_path)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with _translated(lambda: RegistryError(f"run '{run_id}' not found")):
            return dict(self.client.get_run(run_id).data.metrics)

    def ping(self) -> None:
        """Raise RegistryUnavailable unless the server answers a cheap query."""
        with _translated(lambda: RegistryUnavailable("the registry did not answer")):
            self.client.search_registered_models(max_results=1)

    def _missing_version(self, name: str, version: int) -> RegistryError:
        if not self.model_exists(name):
            return ModelNotFound(f"model '{name}' is not registered")
        return VersionNotFound(f"model '{name}' has no version {version}")

    def _missing_alias(self, name: str, alias: str) -> RegistryError:
        if not self.model_exists(name):
            return ModelNotFound(f"model '{name}' is not registered")
        return AliasNotFound(f"model '{name}' has no alias '{alias}'")


@contextmanager
def _translated(not_found: Callable[[], RegistryError]) -> Iterator[None]:
    try:
        yield
    except RegistryError:
        raise
    except RestException as exc:
        if exc.error_code in _NOT_FOUND_CODES:
            raise not_found() from exc
        logger.warning("registry request failed: %s", exc.error_code)
        raise RegistryUnavailable("the model registry request failed") from exc
    except MlflowException as exc:
        logger.warning("registry unreachable: %s", type(exc).__name__)
        raise RegistryUnavailable("the model registry is unreachable") from exc
    except OSError as exc:
        logger.warning("registry unreachable: %s", type(exc).__name__)
        raise RegistryUnavailable("the model registry is unreachable") from exc


def _escape(name: str) -> str:
    return name.replace("'", "\\'")
