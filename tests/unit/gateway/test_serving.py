"""Model specs and resolving a request model (gateway/dataplane/models.py), loading none."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway.dataplane.models import ModelManager
from gateway.dataplane.specs import ModelSpec, parse_specs
from gateway.http.errors import ModelNotReady
from kernel.errors import AliasNotFound, ModelNotFound
from registry.model import LoadedModel
from registry.signature import Feature, Signature
from runtime.sklearn import SklearnRuntime

SIGNATURE = Signature((Feature("f0", "double"),))


class FakeRegistry:
    """Answers alias lookups from a dict and counts them; loads nothing."""

    def __init__(self, aliases: dict[tuple[str, str], int]) -> None:
        self.aliases = aliases
        self.calls: list[tuple[str, str]] = []

    def alias_version(self, name: str, alias: str) -> int:
        self.calls.append((name, alias))
        try:
            return self.aliases[(name, alias)]
        except KeyError:
            raise AliasNotFound(f"alias '{alias}' of '{name}' is not set") from None

    def alias_model_version(self, name: str, alias: str) -> SimpleNamespace:
        return SimpleNamespace(version=str(self.alias_version(name, alias)), tags={})


def model(name: str, version: int) -> LoadedModel:
    native = SklearnRuntime(object(), SIGNATURE.names, SIGNATURE.all_numeric)
    return LoadedModel(name=name, version=version, run_id=None, signature=SIGNATURE, native=native)


def manager(registry: FakeRegistry, models: str = "iris,wine@staging") -> ModelManager:
    return ModelManager(
        parse_specs(models),
        registry,  # type: ignore[arg-type]
        refresh_seconds=60,
        retry_seconds=1,
        cache_size=2,
    )


# -- ModelSpec / parse_specs -----------------------------------------------------------------


def test_spec_without_alias_follows_production() -> None:
    assert ModelSpec.parse("iris") == ModelSpec("iris", "production")


def test_spec_with_alias_keeps_it() -> None:
    assert ModelSpec.parse("iris@staging") == ModelSpec("iris", "staging")


def test_spec_is_stripped_and_an_empty_alias_is_production() -> None:
    assert ModelSpec.parse("  iris@ ") == ModelSpec("iris", "production")


def test_parse_specs_keeps_order_and_skips_empty_parts() -> None:
    assert parse_specs("iris@staging, wine ,,") == [
        ModelSpec("iris", "staging"),
        ModelSpec("wine", "production"),
    ]


def test_first_spec_is_the_default_model() -> None:
    assert manager(FakeRegistry({}), "wine,iris").default_name == "wine"


# -- ModelManager.resolve --------------------------------------------------------------------


def test_resolve_unknown_name_is_model_not_found() -> None:
    models = manager(FakeRegistry({}))
    models.current["iris"] = model("iris", 1)
    with pytest.raises(ModelNotFound):
        asyncio.run(models.resolve("digits"))


def test_resolve_unknown_name_with_alias_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound):
        asyncio.run(manager(FakeRegistry({})).resolve("digits@production"))


def test_resolve_configured_but_not_loaded_is_not_ready() -> None:
    models = manager(FakeRegistry({}))
    models.current["wine"] = model("wine", 1)
    with pytest.raises(ModelNotReady):
        asyncio.run(models.resolve("iris"))
    assert not models.ready


def test_default_not_loaded_is_not_ready() -> None:
    with pytest.raises(ModelNotReady):
        manager(FakeRegistry({})).default()


def test_resolve_name_gives_the_current_model_without_asking_the_registry() -> None:
    registry = FakeRegistry({})
    models = manager(registry)
    current = model("iris", 3)
    models.current["iris"] = current
    assert asyncio.run(models.resolve("iris")) is current
    assert asyncio.run(models.resolve("iris@production")) is current
    assert registry.calls == []


def test_resolve_configured_alias_of_a_spec_gives_its_current_model() -> None:
    models = manager(FakeRegistry({}))
    current = model("wine", 5)
    models.current["wine"] = current
    assert asyncio.run(models.resolve("wine@staging")) is current


def test_resolve_pinned_to_the_current_version_gives_the_current_object() -> None:
    models = manager(FakeRegistry({}))
    current = model("iris", 3)
    models.current["iris"] = current
    assert asyncio.run(models.resolve("iris", 3)) is current


def test_resolve_other_alias_on_the_current_version_gives_the_current_object() -> None:
    registry = FakeRegistry({("iris", "staging"): 3})
    models = manager(registry)
    current = model("iris", 3)
    models.current["iris"] = current
    assert asyncio.run(models.resolve("iris@staging")) is current
    assert registry.calls == [("iris", "staging")]


def test_resolve_other_alias_is_remembered_for_refresh_seconds() -> None:
    registry = FakeRegistry({("iris", "staging"): 3})
    models = manager(registry)
    models.current["iris"] = model("iris", 3)

    async def twice() -> None:
        await models.resolve("iris@staging")
        await models.resolve("iris@staging")

    asyncio.run(twice())
    assert registry.calls == [("iris", "staging")]


def test_resolve_unset_alias_is_alias_not_found() -> None:
    models = manager(FakeRegistry({}))
    models.current["iris"] = model("iris", 3)
    with pytest.raises(AliasNotFound):
        asyncio.run(models.resolve("iris@canary"))


def test_ready_once_every_configured_model_is_loaded() -> None:
    models = manager(FakeRegistry({}))
    models.current["iris"] = model("iris", 1)
    assert not models.ready
    models.current["wine"] = model("wine", 1)
    assert models.ready


def test_describe_reports_the_serving_version() -> None:
    models = manager(FakeRegistry({}))
    models.current["iris"] = model("iris", 4)
    described = models.describe("iris")
    assert described["name"] == "iris"
    assert described["alias"] == "production"
    assert described["ready"] is True
    assert described["version"] == 4
    assert [v["version"] for v in described["versions"]] == [4]
    assert models.describe("wine")["ready"] is False
