"""Gateway settings read from MODELGATE_* variables (gateway/settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELS", "REDIS_URL", "CACHE_URL", "MAX_SYNC_ROWS"):
        monkeypatch.delenv(f"MODELGATE_{name}", raising=False)


def test_defaults_serve_iris_production() -> None:
    assert GatewaySettings(_env_file=None).models == "iris@production"


def test_models_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_MODELS", "iris@staging,wine")
    assert GatewaySettings(_env_file=None).models == "iris@staging,wine"


@pytest.mark.parametrize("value", ["", " , ", ",", "   "])
def test_models_naming_no_model_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MODELGATE_MODELS", value)
    with pytest.raises(ValidationError, match="no model is configured"):
        GatewaySettings(_env_file=None)


def test_cache_url_falls_back_to_the_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_REDIS_URL", "redis://durable:6390/2")
    settings = GatewaySettings(_env_file=None)
    assert settings.cache_url is None
    assert settings.effective_cache_url == "redis://durable:6390/2"


def test_cache_url_when_set_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_REDIS_URL", "redis://durable:6390/2")
    monkeypatch.setenv("MODELGATE_CACHE_URL", "redis://cache:6391/0")
    assert GatewaySettings(_env_file=None).effective_cache_url == "redis://cache:6391/0"


def test_max_sync_rows_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_MAX_SYNC_ROWS", "0")
    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None)
