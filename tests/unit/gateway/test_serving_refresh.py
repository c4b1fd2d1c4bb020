"""The alias-following loop: failures keep the old version, the loop survives, swaps are ordered."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from gateway.dataplane.models import ModelManager
from gateway.dataplane.specs import ModelSpec
from kernel.errors import ArtifactRejected
from registry.digest import DIGEST_TAG
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from registry.trust import ADOPTED, TRUST_TAG
from runtime.sklearn import SklearnRuntime


def _model(version: int) -> LoadedModel:
    tree = DecisionTreeClassifier().fit(np.array([[0.0], [1.0]]), [0, 1])
    signature = Signature((Feature("x", "double"),))
    return LoadedModel("m", version, None, signature, SklearnRuntime(tree, signature.names, True))


class FakeRegistry:
    def __init__(self, version: int) -> None:
        self.aliased = version
        self.tags: dict[str, str] = {}

    def alias_version(self, name: str, alias: str) -> int:
        return self.aliased

    def alias_model_version(self, name: str, alias: str) -> SimpleNamespace:
        return SimpleNamespace(version=str(self.aliased), tags=self.tags)

    def version(self, name: str, version: int) -> SimpleNamespace:
        return SimpleNamespace(version=str(version), tags=self.tags)


def _manager(registry: Any) -> ModelManager:
    return ModelManager(
        [ModelSpec("m", "production")],
        registry,
        refresh_seconds=0.01,
        retry_seconds=0.01,
        cache_size=2,
    )


def test_a_failed_load_keeps_the_old_version_and_is_reported(monkeypatch) -> None:
    manager = _manager(FakeRegistry(2))
    manager.current["m"] = _model(1)

    async def refused(name: str, version: int) -> LoadedModel:
        raise ArtifactRejected("model 'm' version 2 could not be loaded")

    monkeypatch.setattr(manager, "_load", refused)
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert manager.current["m"].version == 1
    assert manager.last_error["m"] == "model 'm' version 2 could not be loaded"


def test_the_loop_outlives_an_unexpected_error(monkeypatch) -> None:
    manager = _manager(FakeRegistry(1))
    calls = 0

    async def flaky(name: str, version: int) -> LoadedModel:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TypeError("something no one expected")
        return _model(version)

    monkeypatch.setattr(manager, "_load", flaky)

    async def scenario() -> None:
        manager.start()
        for _ in range(200):
            if manager.ready:
                break
            await asyncio.sleep(0.01)
        await manager.stop()

    asyncio.run(scenario())
    assert calls >= 2 and manager.current["m"].version == 1


def test_a_rollback_reuses_the_version_kept_in_memory(monkeypatch) -> None:
    registry = FakeRegistry(2)
    manager = _manager(registry)
    manager.current["m"] = _model(1)
    loads: list[int] = []

    async def load(name: str, version: int) -> LoadedModel:
        loads.append(version)
        return _model(version)

    monkeypatch.setattr(manager, "_load", load)
    asyncio.run(manager.refresh(manager.specs["m"]))  # promotion: loads 2, keeps 1 aside
    registry.aliased = 1
    asyncio.run(manager.refresh(manager.specs["m"]))  # rollback: no download
    assert loads == [2] and manager.current["m"].version == 1


def test_a_live_version_that_gets_a_verified_onnx_twin_is_reloaded(monkeypatch) -> None:
    registry = FakeRegistry(1)
    manager = _manager(registry)
    manager.current["m"] = _model(1)
    loads: list[int] = []

    async def load(name: str, version: int) -> LoadedModel:
        loads.append(version)
        return dataclasses.replace(
            _model(version), twin=SimpleNamespace(name="onnx"), twin_status="verified"
        )

    monkeypatch.setattr(manager, "_load", load)
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert loads == []  # nothing new yet
    registry.tags = {"modelgate.onnx.status": "verified"}
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert loads == [1] and manager.current["m"].runtime.name == "onnx"
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert loads == [1]  # served by ONNX now: no further load


def test_a_twin_refused_at_load_is_not_fetched_again_on_every_refresh(monkeypatch) -> None:
    registry = FakeRegistry(1)
    registry.tags = {"modelgate.onnx.status": "verified"}
    manager = _manager(registry)
    manager.current["m"] = dataclasses.replace(_model(1), twin_status="refused: checksum")

    async def load(name: str, version: int) -> LoadedModel:
        raise AssertionError("must not reload")

    monkeypatch.setattr(manager, "_load", load)
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert manager.current["m"].runtime.name == "sklearn"


def test_a_twin_that_could_not_be_downloaded_is_fetched_again_at_the_next_refresh(
    monkeypatch,
) -> None:
    registry = FakeRegistry(1)
    registry.tags = {"modelgate.onnx.status": "verified"}
    manager = _manager(registry)
    manager.current["m"] = dataclasses.replace(
        _model(1), twin_status="unavailable: could not download the ONNX file"
    )
    loads: list[int] = []

    async def load(name: str, version: int) -> LoadedModel:
        loads.append(version)
        return dataclasses.replace(
            _model(version), twin=SimpleNamespace(name="onnx"), twin_status="verified"
        )

    monkeypatch.setattr(manager, "_load", load)
    asyncio.run(manager.refresh(manager.specs["m"]))
    assert loads == [1] and manager.current["m"].runtime.name == "onnx"


def test_a_refused_version_is_tried_again_once_adopted(monkeypatch) -> None:
    registry = FakeRegistry(1)
    manager = _manager(registry)
    loads: list[int] = []

    async def load(name: str, version: int) -> LoadedModel:
        loads.append(version)
        if registry.tags.get(TRUST_TAG) != ADOPTED:
            raise ArtifactRejected("model 'm' version 1: never trusted on first use")
        return _model(version)

    monkeypatch.setattr(manager, "_load", load)
    refresh = manager.specs["m"]
    for _ in range(3):  # refused once, then not downloaded again
        asyncio.run(manager.refresh(refresh))
    assert loads == [1] and "m" not in manager.current
    registry.tags.update({DIGEST_TAG: "a" * 64, TRUST_TAG: ADOPTED})  # `modelgate adopt m 1`
    asyncio.run(manager.refresh(refresh))
    assert loads == [1, 1] and manager.current["m"].version == 1
