"""Loading versions for the gateway: one load per version at a time, in a thread; after each
attempt that succeeds or is refused for good, the gateway's load verdict goes to the registry
(registry/verdicts.py), and the version's approximate size is measured."""

from __future__ import annotations

import asyncio
import logging

import mlflow.artifacts

from kernel.errors import ArtifactRejected, RegistryError
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.loader import load_version
from registry.model import LoadedModel
from registry.verdicts import OK, fingerprint, record_verdict, refused, requested_versions

logger = logging.getLogger(__name__)

#: Directory levels of an artifact walked to add up its size.
MAX_ARTIFACT_DEPTH = 3


class Loader:
    """Loads versions in threads; concurrent callers for the same version share one load."""

    def __init__(self, registry: Registry, options: LoadOptions) -> None:
        self.registry = registry
        self.options = options
        #: This gateway's loader policy, as the verdict tags name it.
        self.fingerprint = fingerprint(options)
        self._pending: dict[tuple[str, int], asyncio.Future[tuple[LoadedModel, int]]] = {}

    async def load(self, name: str, version: int) -> tuple[LoadedModel, int]:
        """The loaded version and its approximate size in bytes; raises a RegistryError."""
        key = (name, version)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._load_and_judge, name, version))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def record(self, name: str, version: int, verdict: str) -> None:
        await asyncio.to_thread(self._record, name, version, verdict)

    async def requested(self) -> list[tuple[str, int]]:
        """Versions the CLI asked about that carry no verdict of this gateway's policy yet."""
        return await asyncio.to_thread(requested_versions, self.registry, self.fingerprint)

    def _load_and_judge(self, name: str, version: int) -> tuple[LoadedModel, int]:
        try:
            model = load_version(self.registry, name, version, self.options)
        except ArtifactRejected as exc:
            self._record(name, version, refused(exc.message))
            raise
        self._record(name, version, OK)
        size = getattr(model, "artifact_bytes", 0) or artifact_bytes(self.registry, name, version)
        return model, size

    def _record(self, name: str, version: int, verdict: str) -> None:
        try:
            record_verdict(self.registry, name, version, self.fingerprint, verdict)
        except RegistryError as exc:  # the verdict is advice: a failed write only logs
            logger.warning("no verdict recorded for %s version %s: %s", name, version, exc.message)


def artifact_bytes(registry: Registry, name: str, version: int) -> int:
    """The size of a version's artifact on the server (0 when it cannot be listed)."""
    try:
        uri = registry.download_uri(name, version)
        return _listed_bytes(uri.rsplit("/", 1)[0], uri, registry.tracking_uri, 0)
    except Exception as exc:  # only a gauge depends on it
        logger.info("size of %s version %s unknown: %s", name, version, type(exc).__name__)
        return 0


def _listed_bytes(root: str, uri: str, tracking_uri: str, depth: int) -> int:
    total = 0
    for info in mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri):
        if info.is_dir and depth < MAX_ARTIFACT_DEPTH:
            total += _listed_bytes(root, f"{root}/{info.path}", tracking_uri, depth + 1)
        elif not info.is_dir:
            total += int(info.file_size or 0)
    return total
