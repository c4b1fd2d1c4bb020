"""Every setting of every service is documented: in .env.example, and on the settings page that
the docs build generates from the settings classes (docs/hooks/settings_page.py)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic._internal._docs_extraction import extract_docstrings_from_cls
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from kernel.settings import RegistrySettings, SharedSettings
from registry.server import MlflowServerSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
CLASSES: tuple[type[BaseSettings], ...] = (
    RegistrySettings,
    SharedSettings,
    GatewaySettings,
    WorkerSettings,
    MlflowServerSettings,
)
NAMES = sorted(
    {f"MODELGATE_{name.upper()}" for settings in CLASSES for name in settings.model_fields}
)


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_page", ROOT / "docs" / "hooks" / "settings_page.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as mkdocs loads its hooks (dataclasses look it up there)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()


def _own_fields(cls: type[BaseSettings]) -> list[str]:
    """The fields declared in `cls` itself (its parents' are in their own table)."""
    return [name for name in inspect.get_annotations(cls) if name in cls.model_fields]


def _docstrings(cls: type[BaseSettings]) -> dict[str, str]:
    # pydantic's own reader of attribute docstrings (what `use_attribute_docstrings` uses),
    # so that the page is checked against a second reader, not against itself.
    found = extract_docstrings_from_cls(cls, use_inspect=True)
    return {name: " ".join(inspect.cleandoc(doc).split()) for name, doc in found.items()}


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_in_env_example(name: str) -> None:
    assert f"#{name}=" in (ROOT / ".env.example").read_text()


def test_the_page_has_one_section_per_class() -> None:
    assert [(s.source, s.cls) for s in HOOK.SECTIONS] == [
        (inspect.getfile(cls).removeprefix(f"{ROOT}/"), cls.__name__) for cls in CLASSES
    ]
    assert all(cls.model_config.get("env_prefix") == HOOK.ENV_PREFIX for cls in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_field_is_on_the_page_with_its_docstring_and_default(
    cls: type[BaseSettings],
) -> None:
    page = HOOK.tables(ROOT)
    section = next(s for s in HOOK.SECTIONS if s.cls == cls.__name__)
    shown = {s.name: s for s in HOOK.read_settings(ROOT / section.source, section.cls)}
    docs = _docstrings(cls)
    assert list(shown) == _own_fields(cls)
    for name in _own_fields(cls):
        setting, field = shown[name], cls.model_fields[name]
        assert docs.get(name), f"{cls.__name__}.{name} has no docstring"
        assert setting.doc == docs[name]
        assert f"| `MODELGATE_{name.upper()}` | {HOOK.cell(setting.type)} |" in page
        assert HOOK.cell(docs[name]) in page
        if field.default is PydanticUndefined:
            assert setting.default == "required"
        else:
            assert setting.default == HOOK.shown_default(field.default), name


def test_the_settings_page_keeps_the_marker_the_hook_replaces() -> None:
    assert HOOK.MARKER in (ROOT / "docs" / HOOK.PAGE).read_text()
    assert "docs/hooks/settings_page.py" in (ROOT / "mkdocs.yml").read_text()
