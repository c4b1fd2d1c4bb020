"""Which model versions this gateway serves, and how it follows their aliases.

Each served `name@alias` (explicit, or found by a `*@alias` pattern: discovery.py) has one
current `LoadedModel`. A background task re-resolves the aliases every `refresh_seconds` (one
registry scan does it for all, with patterns); a new version is loaded beside the old one and
swapped in by one assignment, so requests in flight finish on the version they started with. A
version that fails to load leaves the old one serving (failures.py: when it is tried again).
Pinned versions and other aliases of served models load into a bounded LRU (versions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from typing import Any

from mlflow.entities.model_registry import ModelVersion

from gateway.dataplane.discovery import Discovery
from gateway.dataplane.failures import REFUSED, PinnedFailures, RefusedTrust, kind_of
from gateway.dataplane.judging import judge_requested
from gateway.dataplane.loads import Loader
from gateway.dataplane.lookups import Lookups
from gateway.dataplane.specs import ModelSpec
from gateway.dataplane.versions import MemoryGauges, VersionCache
from gateway.http.errors import ModelUnavailable, Overloaded
from gateway.metrics import MODEL_LOAD_FAILURES, MODEL_READY, MODEL_VERSION
from kernel.errors import RegistryError, VersionNotFound
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.model import LoadedModel
from registry.onnx_twin import VERIFIED, onnx_status

logger = logging.getLogger(__name__)

#: Pinned-version loads running at once (each downloads and deserialises an artifact).
MAX_PINNED_LOADS = 2
#: Failed pinned versions remembered, so that repeated requests do not hammer the registry.
MAX_REMEMBERED_FAILURES = 256


class ModelManager(Discovery):
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
        default: str | None = None,
        max_served: int = 100,
        registry_calls_per_owner: int = 2,
    ) -> None:
        super().__init__(specs, max_served, default)
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.retry_seconds = retry_seconds
        self.options = options or LoadOptions()
        self.loader = Loader(registry, self.options)
        self.cache = VersionCache(cache_size)
        self.memory = MemoryGauges()
        self._pinned_failures = PinnedFailures(MAX_REMEMBERED_FAILURES, refresh_seconds)
        self.lookups = Lookups(
            registry, refresh_seconds, MAX_REMEMBERED_FAILURES, registry_calls_per_owner
        )
        self._refused_trust = RefusedTrust()
        self._refreshing: dict[str, asyncio.Lock] = {}
        # Pinned loads at once; more answer 503 instead of queueing downloads.
        self.pinned_loads = asyncio.Semaphore(MAX_PINNED_LOADS)
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="model-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:  # the loop must outlive any surprise, or promotions stop
                logger.exception("model refresh round failed")
            await asyncio.sleep(self.refresh_seconds if self.ready else self.retry_seconds)

    async def _round(self) -> None:
        known: dict[str, int] = {}
        if self.patterns:
            scan = await self.discover(self.registry)
            if scan is None:
                return  # the registry did not answer the scan: no alias would resolve either
            known = scan.versions
        for spec in list(self.specs.values()):
            try:
                await self.refresh(spec, known.get(spec.name))
            except Exception:
                logger.exception("refresh of %s failed", spec.name)
        await judge_requested(self)

    async def refresh(self, spec: ModelSpec, known: int | None = None) -> None:
        """Resolve the alias once (or take `known`, the version a scan just saw) and swap in
        its version when it changed."""
        # One refresh per model at a time: an admin reload and the loop cannot swap out of order.
        async with self._refreshing.setdefault(spec.name, asyncio.Lock()):
            if self.specs.get(spec.name) == spec:
                await self._refresh(spec, known)

    async def _refresh(self, spec: ModelSpec, known: int | None) -> None:
        name, version = spec.name, known
        serving = self.current.get(name)
        started = time.perf_counter()
        try:
            found = None
            if version is None or (serving is not None and self._twin_may_come(serving, version)):
                found = await asyncio.to_thread(self.registry.alias_model_version, name, spec.alias)
                version = int(found.version)
            upgrade = bool(serving and found and self._onnx_arrived(serving, found))
            same = found is not None and serving is not None and serving.version == version
            status = onnx_status(found) if same and found is not None else None
            if serving and status and not upgrade and status != serving.twin_status:  # refused
                self.current[name] = dataclasses.replace(serving, twin_status=status)
            if serving is not None and serving.version == version and not upgrade:
                self._settled(name)
                return
            failure = self.failures.get(name)
            refused = failure is not None and failure.kind == REFUSED
            # Lasting: tried again once the alias moves, or once `adopt` changed its trust.
            if (
                refused
                and failure is not None
                and failure.version == version
                and not self._refused_trust.changed(
                    (name, version), await self._tags(name, version)
                )
            ):
                return
            self._pinned_failures.check_refused((name, version))  # judged for the CLI already
            # A version served before (a rollback) is still in memory: no download.
            model = None if upgrade else self.cache.get((name, version))
            model = model or await self._load(name, version)
        except RegistryError as exc:
            self._failed(spec, version, exc)
            if version is not None and kind_of(exc) == REFUSED:
                with contextlib.suppress(RegistryError):
                    self._refused_trust.note((name, version), await self._tags(name, version))
            return
        if self.specs.get(name) == spec:  # still served once loaded
            self._swap(spec, model, started)

    def _swap(self, spec: ModelSpec, model: LoadedModel, started: float) -> None:
        name = spec.name
        previous = self.current.get(name)
        self.current[name] = model  # the swap: one assignment on the event loop
        self.cache.pop((name, model.version))
        MODEL_VERSION.labels(name).set(model.version)
        MODEL_READY.labels(name).set(1)
        self._settled(name)
        if previous is not None and previous.version != model.version:
            self._remember(previous)  # kept for a fast rollback and for pinned requests
        self._publish(name)
        # What is loaded now (the libraries, the model) lives as long as the process: out of
        # the garbage collector's sight, a full collection no longer walks it and stalls every
        # request (docs/benchmarks.md).
        gc.freeze()
        logger.info(
            "serving %s@%s version %s (was %s), loaded in %.0f ms",
            name,
            spec.alias,
            model.version,
            getattr(previous, "version", None),
            (time.perf_counter() - started) * 1000,
            extra={"model": name, "model_version": model.version},
        )

    async def _tags(self, name: str, version: int) -> dict[str, str]:
        return dict((await asyncio.to_thread(self.registry.version, name, version)).tags or {})

    def _twin_may_come(self, serving: LoadedModel, version: int) -> bool:
        """Whether the served version could still get a twin (so its tags must be read)."""
        return (
            serving.version == version
            and self.options.use_twin
            and serving.twin is None
            and not serving.twin_status.startswith("refused")
        )

    def _onnx_arrived(self, serving: LoadedModel, found: ModelVersion) -> bool:
        """True when the served version got a verified ONNX twin since it was loaded (`modelgate
        optimize` on a live version, or a download that failed); one refused at load is not."""
        return self._twin_may_come(serving, int(found.version)) and onnx_status(found) == VERIFIED

    # -- lookups for requests --------------------------------------------------------------

    def default(self) -> LoadedModel:
        return self._current_of(self.spec_of(self.default_name).name)

    async def resolve(self, ref: str, version: int | None = None) -> LoadedModel:
        """The model for `name` or `name@alias`, optionally pinned to a version. Only served
        models answer: another alias or a pinned version of one loads into the bounded cache."""
        spec = self.spec_of(ref)
        name, alias = spec.name, ref.partition("@")[2]
        if version is None:
            if not alias or alias == spec.alias:
                return self._current_of(name)
            version = await self.lookups.alias_version(name, alias)
        serving = self.current.get(name)
        if serving is not None and serving.version == version:
            return serving
        return await self._extra_version(name, version)

    def loaded_versions(self, name: str) -> list[LoadedModel]:
        found = {m.version: m for m in self.cache.of_model(name)}
        if name in self.current:
            found[self.current[name].version] = self.current[name]
        return [found[v] for v in sorted(found)]

    async def _extra_version(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        model = self.cache.get(key)
        if model is not None:
            return model
        if self.cache.size == 0:
            raise VersionNotFound(
                f"version {version} of '{name}' is not served here (no version cache)"
            )
        self._pinned_failures.check(key)
        await self.lookups.check_version(name, version, self._pinned_failures)
        if self.pinned_loads.locked():
            raise Overloaded("other model versions are loading; retry shortly")
        async with self.pinned_loads:
            try:
                model = await self._load(name, version)
            except RegistryError as exc:
                self._pinned_failures.remember(key, exc)
                if kind_of(exc) == REFUSED:
                    raise ModelUnavailable(exc.message) from None
                raise
        self.keep(model)
        return model

    # -- memory -----------------------------------------------------------------------------

    async def _load(self, name: str, version: int) -> LoadedModel:
        model, size = await self.loader.load(name, version)
        self.memory.sizes[(name, version)] = size
        return model

    async def load_for_verdict(self, name: str, version: int) -> LoadedModel:
        return await self._load(name, version)  # judging.py, under `pinned_loads`

    def pinned_failure(self, name: str, version: int) -> bool:
        return self._pinned_failures.passing((name, version))

    def remember_pinned_failure(self, name: str, version: int, exc: RegistryError) -> None:
        self._pinned_failures.remember((name, version), exc)

    def keep(self, model: LoadedModel) -> None:
        """Keep a version loaded besides the served ones if its model is still served."""
        self._pinned_failures.forget((model.name, model.version))  # it loads now (adopted)
        if model.name in self.specs:
            self._remember(model)
        else:
            self.memory.forget((model.name, model.version))

    def _remember(self, model: LoadedModel) -> None:
        for dropped in self.cache.put(model):
            serving = self.current.get(dropped.name)
            if serving is None or serving.version != dropped.version:
                self.memory.forget((dropped.name, dropped.version))
            self._publish(dropped.name)
        self._publish(model.name)

    def _publish(self, name: str) -> None:
        self.memory.publish(name, self.loaded_versions(name))

    def _forget_model(self, name: str) -> None:
        """Drop everything of a model no longer served (its alias or itself is gone)."""
        super()._forget_model(name)
        self.cache.drop_model(name)
        self.memory.sizes = {k: v for k, v in self.memory.sizes.items() if k[0] != name}
        self._pinned_failures.forget_model(name)
        self.lookups.forget_model(name)
        lock = self._refreshing.get(name)
        if lock is not None and not lock.locked():
            del self._refreshing[name]
        self._publish(name)
        for gauge in (MODEL_READY, MODEL_VERSION, MODEL_LOAD_FAILURES):
            with contextlib.suppress(KeyError):
                gauge.remove(name)

    def describe(self, name: str) -> dict[str, Any]:
        spec = self.specs[name]
        serving = self.current.get(name)
        return {
            "name": name,
            "alias": spec.alias,
            "ready": serving is not None,
            "state": self.state_of(name),
            "version": serving.version if serving else None,
            "versions": [m.describe() for m in self.loaded_versions(name)],
            "last_error": self.last_error.get(name),
        }
