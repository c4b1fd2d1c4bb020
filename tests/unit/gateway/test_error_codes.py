"""Every error code has its status in the one table, and the table holds nothing else
(gateway/http/errors.py, STATUS_BY_CODE).

An unmapped code is answered as a 500 "internal" (with an error log), so a new ModelgateError
whose code nobody added to the table turns a client error into a server error. The classes are
found by importing every module of the product packages, so one defined anywhere is checked.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette prefers `httpx2` now; the pinned `httpx` still drives TestClient the same way.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from gateway.http.errors import (
    STATUS_BY_CODE,
    GatewayError,
    install_error_handlers,
    modelgate_error_response,
)
from kernel.errors import ModelgateError, RegistryError

PACKAGES = ("kernel", "runtime", "registry", "jobs", "gateway", "worker", "cli")

#: Codes of base classes that only name a category. They are left out of the table on purpose:
#: no one status fits every subclass (registry errors range from 404 to 503), and the client can
#: do nothing with the category alone. One raised bare is answered, like any unmapped code, as a
#: logged 500 "internal" (pinned below). RegistryError is raised bare by registry.client for a
#: missing run, only on paths that catch it (registry.loader) or that no request takes
#: (registry.optimize, from the CLI).
CATEGORY_CODES: dict[str, type[ModelgateError]] = {
    "internal": ModelgateError,
    "gateway_error": GatewayError,
    "registry_error": RegistryError,
}

#: Codes that the handlers of gateway.http.errors answer with themselves, with no class.
HANDLER_CODES = frozenset({"not_found", "method_not_allowed", "invalid_request"})


def product_modules() -> list[str]:
    """Import every module of the product packages; an import error fails the test."""

    def fail(name: str) -> None:
        raise ImportError(f"cannot import {name}")  # walk_packages would skip it silently

    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + ".", onerror=fail):
            importlib.import_module(info.name)
            names.append(info.name)
    return names


def subclasses(cls: type[ModelgateError]) -> Iterator[type[ModelgateError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


@pytest.fixture(scope="module")
def error_classes() -> set[type[ModelgateError]]:
    modules = product_modules()
    assert len(modules) > len(PACKAGES)
    # Only the product's own classes: a test may define its own subclasses.
    return {
        cls for cls in subclasses(ModelgateError) if cls.__module__.partition(".")[0] in PACKAGES
    } | {ModelgateError}


def test_the_walk_finds_the_error_classes_of_every_layer(
    error_classes: set[type[ModelgateError]],
) -> None:
    """Guards the other tests against a walk that finds nothing: classes of modules that
    nothing else here imports are found too."""
    found = {f"{cls.__module__}.{cls.__qualname__}" for cls in error_classes}
    for name in (
        "kernel.errors.AliasHistoryEmpty",
        "gateway.guard.keys.InvalidKeySpec",
        "gateway.guard.ratelimit.RateLimited",
    ):
        assert name in found
    assert {cls.__module__.partition(".")[0] for cls in error_classes} >= {
        "kernel",
        "jobs",
        "gateway",
    }


def test_every_concrete_error_code_has_a_status(error_classes: set[type[ModelgateError]]) -> None:
    unmapped = sorted(
        f"{cls.__module__}.{cls.__qualname__}: {cls.code}"
        for cls in error_classes
        if cls.code not in STATUS_BY_CODE and cls.code not in CATEGORY_CODES
    )
    assert unmapped == []


def test_category_codes_are_only_those_of_base_classes(
    error_classes: set[type[ModelgateError]],
) -> None:
    """The exclusion cannot hide a concrete error: each excluded code is that of its base
    class alone, which has subclasses, and none of them is in the table by mistake."""
    for code, base in CATEGORY_CODES.items():
        assert base.code == code
        assert base.__subclasses__()
        assert [cls for cls in error_classes if cls.code == code] == [base]
        assert code not in STATUS_BY_CODE


@pytest.mark.parametrize("code", sorted(CATEGORY_CODES))
def test_a_category_error_raised_bare_is_a_500(code: str) -> None:
    response = modelgate_error_response(CATEGORY_CODES[code]("a detail"))
    assert response.status_code == 500
    assert b'"code":"internal"' in bytes(response.body)
    assert b"a detail" not in bytes(response.body)


def test_the_table_has_no_dead_entries(error_classes: set[type[ModelgateError]]) -> None:
    used = {cls.code for cls in error_classes} | HANDLER_CODES
    assert sorted(set(STATUS_BY_CODE) - used) == []


def test_every_status_is_an_error_status() -> None:
    assert all(400 <= status <= 599 for status in STATUS_BY_CODE.values())


def test_the_handler_codes_are_answered_by_the_handlers() -> None:
    """HANDLER_CODES is no free pass for dead entries: each is what a handler answers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/items/{item}")
    async def item(item: int) -> dict[str, int]:
        return {"item": item}

    with TestClient(app) as client:
        answers = {
            "not_found": client.get("/nowhere"),
            "method_not_allowed": client.post("/items/1"),
            "invalid_request": client.get("/items/not-a-number"),
        }
    assert set(answers) == HANDLER_CODES
    for code, response in answers.items():
        assert response.json()["error"]["code"] == code
        assert response.status_code == STATUS_BY_CODE[code]
