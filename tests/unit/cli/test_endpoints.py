"""cli/endpoints.py: the flag wins, the source is named, passwords never printed."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cli.endpoints import Endpoint, find, redis_endpoint, setting
from cli.lazy import LazyGroup


@pytest.fixture(autouse=True)
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No MODELGATE_* variable, no var/stack.env above, no user config."""
    for name in list(__import__("os").environ):
        if name.startswith("MODELGATE_") or name == "XDG_CONFIG_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_describe_masks_a_password_and_names_the_source() -> None:
    where = Endpoint("redis://:s3cret@10.0.0.5:6379/0", "$MODELGATE_REDIS_URL")
    assert where.describe() == "redis://***@10.0.0.5:6379/0 (from $MODELGATE_REDIS_URL)"


def test_flag_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    name, flag = "MODELGATE_REDIS_URL", "--redis-url"
    assert find(name, flag, None, "redis://d") == Endpoint("redis://d", "default")
    monkeypatch.setenv(name, "redis://env")
    assert find(name, flag, None, "redis://d") == Endpoint("redis://env", f"${name}")
    assert find(name, flag, "redis://flag", "redis://d") == Endpoint("redis://flag", flag)
    assert find("MODELGATE_API_KEY", "--api-key", None, None) is None


def test_stack_env_and_user_config_are_read_for_settings_without_a_flag(nowhere: Path) -> None:
    config = nowhere / "home" / ".config" / "modelgate" / "config"
    config.parent.mkdir(parents=True)
    config.write_text("MODELGATE_KEY_PREFIX=from-config:\n")
    assert setting("MODELGATE_KEY_PREFIX", "modelgate:") == "from-config:"
    (nowhere / "var").mkdir()
    (nowhere / "var" / "stack.env").write_text("MODELGATE_KEY_PREFIX=from-stack:\n")
    assert setting("MODELGATE_KEY_PREFIX", "modelgate:") == "from-stack:"


def test_a_flag_given_on_the_group_reaches_its_commands() -> None:
    seen: list[Endpoint] = []

    @click.group()
    @click.option("--redis-url")
    def group(redis_url: str | None) -> None:
        pass

    @group.command()
    @click.pass_context
    def show(ctx: click.Context) -> None:
        seen.append(redis_endpoint(ctx))

    group(["--redis-url", "redis://g/0", "show"], standalone_mode=False)
    assert seen == [Endpoint("redis://g/0", "--redis-url")]


def test_lazy_group_lists_and_loads_by_name() -> None:
    group = LazyGroup(name="g", lazy={"x": "cli.endpoints:Endpoint", "keys": "cli.keys:keys"})
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["keys", "x"]
    assert group.get_command(ctx, "keys") is not None
    with pytest.raises(TypeError):
        group.get_command(ctx, "x")
    assert group.get_command(ctx, "nope") is None
