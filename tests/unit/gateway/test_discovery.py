"""Patterns in MODELGATE_MODELS, the served set, the cap, the default model, readiness and the
lasting refusals (gateway/dataplane/discovery.py, served.py, failures.py, models.py); a fake
registry answers, versions load from a stub."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateway.dataplane.models import ModelManager
from gateway.dataplane.served import scan
from gateway.dataplane.specs import ModelSpec, parse_specs
from gateway.http.errors import ModelNotReady, ModelUnavailable, modelgate_error_response
from gateway.settings import GatewaySettings
from kernel.errors import (
    ArtifactRejected,
    ModelNotFound,
    RegistryUnavailable,
    VersionNotFound,
)
from kernel.loading import LoadOptions
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from runtime.sklearn import SklearnRuntime

SIGNATURE = Signature((Feature("f0", "double"),))


def model(name: str, version: int) -> LoadedModel:
    native = SklearnRuntime(object(), SIGNATURE.names, SIGNATURE.all_numeric)
    return LoadedModel(name=name, version=version, run_id=None, signature=SIGNATURE, native=native)


class FakeRegistry:
    """Registered models with their aliases; a scan or an alias lookup reads them."""

    def __init__(self, aliases: dict[str, dict[str, int]]) -> None:
        self.models = aliases
        self.down = False
        self.alias_calls = 0
        self.client = SimpleNamespace(search_model_versions=lambda *args, **kwargs: [])

    def registered_models(self) -> list[SimpleNamespace]:
        if self.down:
            raise RegistryUnavailable("the registry did not answer")
        return [
            SimpleNamespace(name=n, aliases={a: str(v) for a, v in al.items()})
            for n, al in self.models.items()
        ]

    def alias_model_version(self, name: str, alias: str) -> SimpleNamespace:
        self.alias_calls += 1
        if self.down:
            raise RegistryUnavailable("the registry did not answer")
        if name not in self.models:
            raise ModelNotFound(f"model '{name}' is not registered")
        return SimpleNamespace(version=str(self.models[name][alias]), tags={})

    def alias_version(self, name: str, alias: str) -> int:
        return int(self.alias_model_version(name, alias).version)

    def version(self, name: str, version: int) -> SimpleNamespace:
        """Every version of a registered model exists (what a pinned load asks first)."""
        if name not in self.models:
            raise ModelNotFound(f"model '{name}' is not registered")
        return SimpleNamespace(version=str(version), tags={})


class StubManager(ModelManager):
    """Loads stub versions (and records which); versions in `refused` fail their digest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loads: list[tuple[str, int]] = []
        self.refused: set[tuple[str, int]] = set()

    async def _load(self, name: str, version: int) -> LoadedModel:
        self.loads.append((name, version))
        if (name, version) in self.refused:
            raise ArtifactRejected(f"model '{name}' version {version} does not match its SHA-256")
        return model(name, version)


def manager(registry: FakeRegistry, models: str, **options: Any) -> StubManager:
    settings = {"refresh_seconds": 60, "retry_seconds": 1, "cache_size": 2, **options}
    return StubManager(parse_specs(models), registry, **settings)


def round_of(models: ModelManager) -> None:
    asyncio.run(models._round())


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


# -- parsing and settings ---------------------------------------------------------------------


def test_patterns_parse_beside_explicit_entries() -> None:
    specs = parse_specs("*@production, fraud@champion, *@staging")
    assert specs == [
        ModelSpec("*", "production"),
        ModelSpec("fraud", "champion"),
        ModelSpec("*", "staging"),
    ]
    assert [s.is_pattern for s in specs] == [True, False, True]
    assert parse_specs("*") == [ModelSpec("*", "production")]


@pytest.mark.parametrize("bad", ["fr*ud@production", "*@a,*@a", "*@a,iris,iris"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_specs(bad)


def test_settings_check_the_default_model_and_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewaySettings(models="*@production").default_model is None
    assert GatewaySettings(models="*@production", default_model="iris").default_model == "iris"
    assert GatewaySettings(models="iris", default_model=" ").default_model is None
    with pytest.raises(ValueError, match="not among the served models"):
        GatewaySettings(models="iris@production", default_model="wine")
    with pytest.raises(ValueError, match="model name"):
        GatewaySettings(models="*@production", default_model="iris@staging")
    with pytest.raises(ValueError, match="max_served_models"):
        GatewaySettings(models="a,b,c", max_served_models=2)


def test_only_patterns_and_no_default_says_to_set_it() -> None:
    models = manager(FakeRegistry({}), "*@production")
    with pytest.raises(ModelNotFound, match="MODELGATE_DEFAULT_MODEL"):
        models.default_name  # noqa: B018 - the legacy routes read it
    assert manager(FakeRegistry({}), "*@production,fraud").default_name == "fraud"
    assert manager(FakeRegistry({}), "*", default="iris").default_name == "iris"


# -- the scan, pure ---------------------------------------------------------------------------


def test_scan_matches_patterns_in_order_and_explicit_entries_win() -> None:
    registered = FakeRegistry(
        {
            "a": {"production": 1, "staging": 2},
            "b": {"staging": 5},
            "c": {"champion": 3},
            "fraud": {"champion": 7, "production": 8},
            "we@ird": {"production": 1},
        }
    ).registered_models()
    explicit = {"fraud": ModelSpec("fraud", "champion")}
    found = scan(registered, explicit, ["production", "staging"], (), cap=100)
    assert found.served == {"a": ModelSpec("a", "production"), "b": ModelSpec("b", "staging")}
    assert found.versions == {"fraud": 7, "a": 1, "b": 5}
    assert found.over_cap == ()


def test_the_cap_keeps_served_models_and_fills_in_name_order() -> None:
    registered = FakeRegistry({n: {"production": 1} for n in "abcde"}).registered_models()
    found = scan(registered, {"x": ModelSpec("x", "production")}, ["production"], {"d"}, cap=3)
    assert set(found.served) == {"d", "a"}
    assert found.over_cap == ("b", "c", "e")


# -- the manager --------------------------------------------------------------------------------


def test_a_model_given_the_alias_is_served_and_one_losing_it_answers_404() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    models = manager(registry, "*@production")
    with pytest.raises(ModelNotReady):  # nothing is known before the first scan
        asyncio.run(models.resolve("b"))
    round_of(models)
    assert models.current["a"].version == 1 and models.ready
    registry.models["b"] = {"production": 4}
    round_of(models)
    assert asyncio.run(models.resolve("b")).version == 4
    assert gauge("modelgate_loaded_versions", model="b") == 1
    del registry.models["b"]["production"]
    round_of(models)
    with pytest.raises(ModelNotFound):
        asyncio.run(models.resolve("b"))
    assert "b" not in models.current and models.loaded_versions("b") == []
    assert gauge("modelgate_model_ready", model="b") is None
    assert gauge("modelgate_loaded_versions", model="b") is None


def test_a_scan_sees_versions_so_an_unchanged_model_costs_no_request() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    models = manager(registry, "*@production", options=LoadOptions(use_twin=False))
    round_of(models)
    round_of(models)
    registry.models["a"]["production"] = 2
    round_of(models)
    assert registry.alias_calls == 0 and models.loads == [("a", 1), ("a", 2)]


def test_a_scan_failure_keeps_serving_what_was_found() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    models = manager(registry, "*@production")
    round_of(models)
    registry.down = True
    round_of(models)
    assert models.current["a"].version == 1 and models.ready
    assert models.report()["discovery"]["error"] == "the registry did not answer"


def test_models_past_the_cap_are_refused_and_listed() -> None:
    registry = FakeRegistry({n: {"production": 1} for n in ("a", "b", "c")})
    models = manager(registry, "*@production", max_served=2)
    round_of(models)
    assert set(models.current) == {"a", "b"} and models.ready
    assert models.report()["discovery"]["over_cap"] == ["c"]
    with pytest.raises(ModelUnavailable, match="MODELGATE_MAX_SERVED_MODELS"):
        asyncio.run(models.resolve("c"))
    assert gauge("modelgate_models_over_cap") == 1


def test_a_refused_version_does_not_hold_readiness_and_answers_503_without_retry() -> None:
    registry = FakeRegistry({"a": {"production": 1}, "bad": {"production": 1}})
    models = manager(registry, "*@production")
    models.refused.add(("bad", 1))
    round_of(models)
    round_of(models)
    assert models.ready and models.state_of("bad") == "refused"
    assert models.loads.count(("bad", 1)) == 1  # not tried again
    (failed,) = models.report()["failed"]
    assert failed["model"] == "bad" and failed["version"] == 1 and "SHA-256" in failed["reason"]
    with pytest.raises(ModelUnavailable) as caught:
        asyncio.run(models.resolve("bad"))
    response = modelgate_error_response(caught.value)
    assert response.status_code == 503 and "retry-after" not in response.headers
    assert gauge("modelgate_model_load_failures", model="bad") == 1
    registry.models["bad"]["production"] = 2  # the alias moves: tried again, and served
    round_of(models)
    assert models.current["bad"].version == 2 and not models.report()["failed"]
    assert gauge("modelgate_model_load_failures", model="bad") == 0


def test_an_outage_never_turns_a_refusal_back_into_waiting() -> None:
    registry = FakeRegistry({"bad": {"production": 1}})
    models = manager(registry, "bad")
    models.refused.add(("bad", 1))
    round_of(models)
    assert models.ready
    registry.down = True
    round_of(models)
    assert models.ready and models.state_of("bad") == "refused"


def test_a_missing_model_holds_readiness_only_while_nothing_serves() -> None:
    registry = FakeRegistry({})
    models = manager(registry, "iris,typo")
    round_of(models)
    assert not models.ready and models.state_of("iris") == "missing"
    with pytest.raises(ModelNotReady):  # may still appear: 503 with Retry-After
        asyncio.run(models.resolve("iris"))
    registry.models["iris"] = {"production": 1}
    round_of(models)
    assert models.ready and models.state_of("typo") == "missing"


def test_a_transient_failure_keeps_readiness_waiting() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    registry.down = True
    models = manager(registry, "a")
    round_of(models)
    assert not models.ready and models.state_of("a") == "loading"


def test_pinned_versions_need_the_cache_and_a_refused_one_is_not_downloaded_again() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    models = manager(registry, "a")
    round_of(models)
    models.refused.add(("a", 5))
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            asyncio.run(models.resolve("a", 5))
    assert models.loads.count(("a", 5)) == 1
    uncached = manager(registry, "a", cache_size=0)
    round_of(uncached)
    with pytest.raises(VersionNotFound):
        asyncio.run(uncached.resolve("a", 2))
    assert uncached.loads == [("a", 1)]


def test_versions_besides_the_served_ones_are_bounded_least_recently_used_first() -> None:
    registry = FakeRegistry({"a": {"production": 1}})
    models = manager(registry, "a", cache_size=2)
    round_of(models)
    models.memory.sizes[("a", 1)] = 1000
    for version in (2, 3):
        asyncio.run(models.resolve("a", version))
    asyncio.run(models.resolve("a", 2))  # 2 used last: 3 goes first
    asyncio.run(models.resolve("a", 4))
    assert [m.version for m in models.loaded_versions("a")] == [1, 2, 4]
    assert gauge("modelgate_loaded_versions", model="a") == 3
    assert gauge("modelgate_loaded_model_bytes", model="a", version="1") == 1000
    assert gauge("modelgate_loaded_model_bytes", model="a", version="3") is None


def test_a_default_model_no_pattern_found_yet_holds_readiness_while_nothing_serves() -> None:
    registry = FakeRegistry({})
    models = manager(registry, "*@production", default="iris")
    round_of(models)
    assert not models.ready  # `make up` before the trainer registered iris
    with pytest.raises(ModelNotReady, match="default model 'iris'"):
        asyncio.run(models.resolve(models.default_name))
    registry.models["iris"] = {"production": 1}
    round_of(models)
    assert models.ready and models.default().version == 1
