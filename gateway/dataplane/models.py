"""Which model versions this gateway serves, and how it follows their aliases.

Each configured `name@alias` has one current `LoadedModel`. A background task re-resolves the
aliases every `refresh_seconds`; a new version is loaded beside the old one and swapped in by
one assignment, so requests in flight finish on the version they started with. A version that
fails to load or verify leaves the old one serving. Pinned versions and other aliases are loaded
on demand into a small LRU.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import OrderedDict
from typing import Any

from mlflow.entities.model_registry import ModelVersion

from gateway.dataplane.specs import ModelSpec
from gateway.http.errors import ModelNotReady, Overloaded
from gateway.metrics import MODEL_READY, MODEL_VERSION
from kernel.errors import ModelNotFound, RegistryError
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.loader import load_version
from registry.model import LoadedModel
from registry.onnx_twin import VERIFIED, onnx_status

logger = logging.getLogger(__name__)

#: Pinned-version loads running at once (each downloads and deserialises an artifact).
MAX_PINNED_LOADS = 2
#: Failed versions remembered (briefly) so that repeated requests do not hammer the registry.
MAX_REMEMBERED_FAILURES = 256


class ModelManager:
    """Holds the served versions; every method runs on the event loop, loads run in threads."""

    def __init__(
        self,
        specs: list[ModelSpec],
        registry: Registry,
        *,
        refresh_seconds: float,
        retry_seconds: float,
        cache_size: int,
        options: LoadOptions | None = None,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.default_name = specs[0].name
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self.cache_size = cache_size
        self.options = options or LoadOptions()
        self.current: dict[str, LoadedModel] = {}
        self.last_error: dict[str, str | None] = {spec.name: None for spec in specs}
        self._extra: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._alias_seen: dict[tuple[str, str], tuple[int, float]] = {}
        # Versions that failed lately, as (error class, message, when): bounded, since clients
        # choose the version numbers.
        self._failed: OrderedDict[tuple[str, int], tuple[type[RegistryError], str, float]] = (
            OrderedDict()
        )
        self._loading: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}
        self._refreshing = {name: asyncio.Lock() for name in self.specs}
        # Pinned loads at once; more answer 503 instead of queueing downloads.
        self._pinned_loads = asyncio.Semaphore(MAX_PINNED_LOADS)
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="model-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def ready(self) -> bool:
        return all(name in self.current for name in self.specs)

    async def _follow(self) -> None:
        while True:
            for spec in self.specs.values():
                try:
                    await self.refresh(spec)
                except Exception:  # the loop must outlive any surprise, or promotions stop
                    logger.exception("refresh of %s failed", spec.name)
            await asyncio.sleep(self.refresh_seconds if self.ready else self.retry_seconds)

    async def refresh(self, spec: ModelSpec) -> None:
        """Resolve the alias once and swap in its version when it changed."""
        # One refresh per model at a time: an admin reload and the loop cannot swap out of order.
        async with self._refreshing[spec.name]:
            await self._refresh(spec)

    async def _refresh(self, spec: ModelSpec) -> None:
        try:
            found = await asyncio.to_thread(
                self.registry.alias_model_version, spec.name, spec.alias
            )
            version = int(found.version)
            serving = self.current.get(spec.name)
            upgrade = serving is not None and self._onnx_arrived(serving, found)
            if serving is not None and serving.version == version and not upgrade:
                self.last_error[spec.name] = None
                return
            started = time.perf_counter()
            # A version served before (a rollback) is still in memory: no download.
            model = None if upgrade else self._extra.get((spec.name, version))
            model = model or await self._load(spec.name, version)
        except RegistryError as exc:
            if self.last_error.get(spec.name) != exc.message:
                logger.warning(
                    "keeping %s version %s: %s",
                    spec.name,
                    getattr(self.current.get(spec.name), "version", None),
                    exc.message,
                    extra={"model": spec.name, "error_code": exc.code},
                )
            self.last_error[spec.name] = exc.message
            return
        previous = self.current.get(spec.name)
        self.current[spec.name] = model  # the swap: one assignment on the event loop
        MODEL_VERSION.labels(spec.name).set(model.version)
        MODEL_READY.labels(spec.name).set(1)
        self.last_error[spec.name] = None
        self._extra.pop((spec.name, model.version), None)
        if previous is not None:
            self._remember(previous)  # kept for a fast rollback and for pinned requests
        # What is loaded now (the libraries, the model) lives as long as the process: out of
        # the garbage collector's sight, a full collection no longer walks it and stalls every
        # request (docs/benchmarks.md).
        gc.freeze()
        logger.info(
            "serving %s@%s version %s (was %s), loaded in %.0f ms",
            spec.name,
            spec.alias,
            model.version,
            getattr(previous, "version", None),
            (time.perf_counter() - started) * 1000,
            extra={"model": spec.name, "model_version": model.version},
        )

    def _onnx_arrived(self, serving: LoadedModel, found: ModelVersion) -> bool:
        """True when the served version got a verified ONNX twin since it was loaded
        (`modelgate optimize` on a live version), or whose twin could not be downloaded at load;
        a twin refused at load (checksum, onnxruntime) is not retried."""
        return (
            self.options.use_twin
            and int(found.version) == serving.version
            and serving.twin is None
            and not serving.twin_status.startswith("refused")
            and onnx_status(found) == VERIFIED
        )

    # -- lookups for requests --------------------------------------------------------------

    def default(self) -> LoadedModel:
        return self._current_of(self.default_name)

    def spec_of(self, ref: str) -> ModelSpec:
        """The configured spec of `name` or `name@alias`, else ModelNotFound."""
        name = ref.partition("@")[0]
        spec = self.specs.get(name)
        if spec is None:
            raise ModelNotFound(f"model '{name[:64]}' is not served here")
        return spec

    async def resolve(self, ref: str, version: int | None = None) -> LoadedModel:
        """The model for `name` or `name@alias`, optionally pinned to a version."""
        spec = self.spec_of(ref)
        name, alias = spec.name, ref.partition("@")[2]
        if version is None:
            if not alias or alias == spec.alias:
                return self._current_of(name)
            version = await self._alias_version(name, alias)
        serving = self.current.get(name)
        if serving is not None and serving.version == version:
            return serving
        return await self._extra_version(name, version)

    def _current_of(self, name: str) -> LoadedModel:
        model = self.current.get(name)
        if model is None:
            raise ModelNotReady(f"model '{name}' is not loaded yet")
        return model

    def loaded_versions(self, name: str) -> list[LoadedModel]:
        found = {m.version: m for (n, _), m in self._extra.items() if n == name}
        if name in self.current:
            found[self.current[name].version] = self.current[name]
        return [found[v] for v in sorted(found)]

    async def _alias_version(self, name: str, alias: str) -> int:
        key = (name, alias)
        seen = self._alias_seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[1] < self.refresh_seconds:
            return seen[0]
        version = await asyncio.to_thread(self.registry.alias_version, name, alias)
        self._alias_seen[key] = (version, now)
        return version

    async def _extra_version(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        model = self._extra.get(key)
        if model is not None:
            self._extra.move_to_end(key)
            return model
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[2] < self.refresh_seconds:
            raise failed[0](failed[1])
        if self._pinned_loads.locked():
            raise Overloaded("other model versions are loading; retry shortly")
        async with self._pinned_loads:
            try:
                model = await self._load(name, version)
            except RegistryError as exc:
                self._failed[key] = (type(exc), exc.message, time.monotonic())
                while len(self._failed) > MAX_REMEMBERED_FAILURES:
                    self._failed.popitem(last=False)
                raise
        self._remember(model)
        return model

    def _remember(self, model: LoadedModel) -> None:
        if self.cache_size > 0:
            self._extra[(model.name, model.version)] = model
            self._extra.move_to_end((model.name, model.version))
            while len(self._extra) > self.cache_size:
                self._extra.popitem(last=False)

    async def _load(self, name: str, version: int) -> LoadedModel:
        """Load one version in a thread; concurrent callers for the same version share it."""
        key = (name, version)
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                asyncio.to_thread(load_version, self.registry, name, version, self.options)
            )
            self._loading[key] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(pending)

    def describe(self, name: str) -> dict[str, Any]:
        spec = self.specs[name]
        serving = self.current.get(name)
        return {
            "name": name,
            "alias": spec.alias,
            "ready": serving is not None,
            "version": serving.version if serving else None,
            "versions": [m.describe() for m in self.loaded_versions(name)],
            "last_error": self.last_error.get(name),
        }
