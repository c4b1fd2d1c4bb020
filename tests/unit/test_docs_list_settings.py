"""Every setting of every service is documented: in .env.example and in the README's settings
table (gateway, worker and MLflow server; the gateway's include the shared and registry ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from registry.server import MlflowServerSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(
    {
        f"MODELGATE_{name.upper()}"
        for settings in (GatewaySettings, WorkerSettings, MlflowServerSettings)
        for name in settings.model_fields
    }
)


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_in_env_example(name: str) -> None:
    assert f"#{name}=" in (ROOT / ".env.example").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_setting_is_in_readme(name: str) -> None:
    assert f"| `{name}` |" in (ROOT / "README.md").read_text()
