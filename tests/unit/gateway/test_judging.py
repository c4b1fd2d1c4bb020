"""The gateway's side of the load verdicts: every load attempt that succeeds or is refused
records one (gateway/dataplane/loads.py), and requested versions are judged a few per round
(gateway/dataplane/judging.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.dataplane import judging, loads
from gateway.dataplane.loads import Loader
from gateway.dataplane.models import ModelManager
from gateway.dataplane.specs import parse_specs
from kernel.errors import ArtifactRejected, RegistryUnavailable
from kernel.loading import LoadOptions
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from registry.verdicts import REQUEST_TAG, fingerprint, verdict_tag
from runtime.sklearn import SklearnRuntime

SIGNATURE = Signature((Feature("f0", "double"),))
FP = fingerprint(LoadOptions())


def model(name: str, version: int) -> LoadedModel:
    native = SklearnRuntime(object(), SIGNATURE.names, SIGNATURE.all_numeric)
    return LoadedModel(name, version, None, SIGNATURE, native, artifact_bytes=123)


class FakeRegistry:
    """Version tags in a dict; a search returns the requested versions with their tags."""

    tracking_uri = "http://registry.invalid"

    def __init__(self) -> None:
        self.tags: dict[tuple[str, int], dict[str, str]] = {}
        self.searches = 0
        self.client = SimpleNamespace(search_model_versions=self._search)

    def _search(self, query: str, max_results: int, order_by: list[str]) -> list[Any]:
        assert query == f"tags.`{REQUEST_TAG}` = '1'"
        self.searches += 1
        return [
            SimpleNamespace(name=n, version=str(v), tags=dict(t))
            for (n, v), t in sorted(self.tags.items(), reverse=True)
            if t.get(REQUEST_TAG) == "1"
        ][:max_results]

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.tags.setdefault((name, version), {})[key] = value

    def alias_model_version(self, name: str, alias: str) -> SimpleNamespace:
        return SimpleNamespace(version="1", tags={})


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Stub the loader: versions load, except version 13, refused; the calls are recorded."""
    calls: list[tuple[str, int]] = []

    def load_version(registry: Any, name: str, version: int, options: Any) -> LoadedModel:
        calls.append((name, version))
        if version == 13:
            raise ArtifactRejected("serialization format 'pickle' is not allowed")
        if version == 99:
            raise RegistryUnavailable("could not download")
        return model(name, version)

    monkeypatch.setattr(loads, "load_version", load_version)
    return calls


def test_every_load_attempt_records_its_verdict(loaded: list[tuple[str, int]]) -> None:
    registry = FakeRegistry()
    loader = Loader(registry, LoadOptions())  # type: ignore[arg-type]
    found, size = asyncio.run(loader.load("m", 1))
    assert found.version == 1 and size == 123
    with pytest.raises(ArtifactRejected):
        asyncio.run(loader.load("m", 13))
    with pytest.raises(RegistryUnavailable):
        asyncio.run(loader.load("m", 99))
    assert registry.tags[("m", 1)] == {verdict_tag(FP): "ok"}
    assert registry.tags[("m", 13)] == {
        verdict_tag(FP): "refused: serialization format 'pickle' is not allowed"
    }
    assert ("m", 99) not in registry.tags  # a passing failure says nothing


def test_requested_versions_are_judged_a_few_per_round(
    loaded: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = FakeRegistry()
    for name, version in (("m", 1), ("m", 2), ("m", 13), ("other", 4), ("done", 1)):
        registry.set_version_tag(name, version, REQUEST_TAG, "1")
    registry.set_version_tag("done", 1, verdict_tag(FP), "ok")  # judged already: left alone
    manager = ModelManager(
        parse_specs("m"),
        registry,  # type: ignore[arg-type]
        refresh_seconds=60,
        retry_seconds=1,
        cache_size=4,
    )
    manager.current["m"] = model("m", 1)  # in memory: ok without a load
    monkeypatch.setattr(judging, "MAX_JUDGED_PER_ROUND", 2)
    asyncio.run(judging.judge_requested(manager))
    assert loaded == [("other", 4), ("m", 13)]
    assert registry.tags[("m", 1)][verdict_tag(FP)] == "ok"
    assert registry.tags[("m", 13)][verdict_tag(FP)].startswith("refused: ")
    assert registry.tags[("other", 4)][verdict_tag(FP)] == "ok"
    assert ("m", 2) not in {k for k, t in registry.tags.items() if verdict_tag(FP) in t}
    assert [m.version for m in manager.loaded_versions("other")] == []  # not served: dropped
    asyncio.run(judging.judge_requested(manager))
    assert loaded[-1] == ("m", 2) and [m.version for m in manager.loaded_versions("m")] == [1, 2]
