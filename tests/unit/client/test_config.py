"""Where the client connects: argument, environment, var/stack.env (+ var/dev-api-key), user
config, default; first match wins, and each value says where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelgate_client import Client, find_connection, find_setting
from modelgate_client.config import read_env_file, stack_root, user_config_file

URL = "MODELGATE_GATEWAY_URL"
KEY = "MODELGATE_API_KEY"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_step_in_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work, home = isolated / "work", isolated / "home"
    # 5. default
    found = find_setting(URL, default="http://d")
    assert (found.value, found.source) == ("http://d", "default")
    assert find_setting(KEY).value is None and find_setting(KEY).source == "default"
    # 4. the user config file
    config = write(home / ".config" / "modelgate" / "config", f"{URL}=http://user\n{KEY}=ukey\n")
    assert find_setting(URL).value == "http://user"
    assert find_setting(URL).source == str(config.resolve())
    # 3. var/stack.env in an ancestor of the working directory; the key file beside it
    nested = work / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    stack = write(work / "var" / "stack.env", f"export {URL}='http://stack'\n")
    assert find_setting(URL).value == "http://stack"
    assert find_setting(URL).source == str(stack.resolve())
    assert find_setting(KEY).value == "ukey"  # stack.env has no key: the user config's
    dev_key = write(work / "var" / "dev-api-key", "devkey\n")
    assert find_setting(KEY).value == "devkey"
    assert find_setting(KEY).source == str(dev_key.resolve())
    # 2. the environment
    monkeypatch.setenv(URL, "http://env")
    monkeypatch.setenv(KEY, "envkey")
    assert (find_setting(URL).value, find_setting(URL).source) == ("http://env", f"${URL}")
    assert find_setting(KEY).value == "envkey"
    # 1. explicit, named as the caller says
    found = find_setting(URL, "http://flag", explicit_source="--gateway-url")
    assert (found.value, found.source) == ("http://flag", "--gateway-url")
    assert find_setting(URL, "http://arg").source == "argument"


def test_empty_values_count_as_unset(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL, "  ")
    write(isolated / "work" / "var" / "stack.env", f"{URL}=\n")
    write(isolated / "work" / "var" / "dev-api-key", "\n")
    assert find_setting(URL, "", default="http://d").source == "default"
    assert find_setting(KEY).value is None


def test_xdg_and_modelgate_config(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = isolated / "xdg"
    write(xdg / "modelgate" / "config", f"{URL}=http://xdg\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert find_setting(URL).value == "http://xdg"
    other = write(isolated / "elsewhere.env", f'{URL}="http://named"  \n')
    monkeypatch.setenv("MODELGATE_CONFIG", str(other))
    assert find_setting(URL).value == "http://named"
    assert user_config_file() == other.resolve()
    # A relative XDG_CONFIG_HOME is ignored, as the spec says.
    monkeypatch.delenv("MODELGATE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    assert user_config_file() == (isolated / "home" / ".config" / "modelgate" / "config")


def test_the_first_stack_env_upwards_wins(isolated: Path) -> None:
    outer = write(isolated / "work" / "var" / "stack.env", f"{URL}=http://outer\n")
    inner = write(isolated / "work" / "in" / "var" / "stack.env", f"{URL}=http://inner\n")
    inner_root = inner.parent.parent
    assert find_setting(URL, cwd=inner_root / "deeper").value == "http://inner"
    assert find_setting(URL, cwd=outer.parent.parent).value == "http://outer"
    assert find_setting(URL).value == "http://outer"  # from the working directory
    assert stack_root(inner_root / "deeper") == inner_root.resolve()
    assert stack_root(isolated / "home") is None


def test_dotenv_format(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e",
        "# a comment\n\nexport A=1\nB = ' two '\nC=\"3\"\nD=4 # trailing\nnot a line\nE=x=y\n",
    )
    assert read_env_file(path) == {"A": "1", "B": " two ", "C": "3", "D": "4", "E": "x=y"}
    assert read_env_file(tmp_path / "missing") == {}


def test_connection_and_client_name_their_sources(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = find_connection()
    assert connection.url == "http://127.0.0.1:8000" and connection.url_source == "default"
    assert connection.api_key is None and connection.key_source == "default"
    monkeypatch.setenv(URL, "http://gw.example:9000/")
    connection = find_connection(api_key="k", key_flag="--api-key")
    assert connection.url == "http://gw.example:9000"
    assert connection.url_source == f"${URL}" and connection.key_source == "--api-key"
    with Client() as client:
        assert client.url == "http://gw.example:9000"
        assert "X-API-Key" not in client.headers
        assert client.headers["User-Agent"].startswith("modelgate-client/")
    with Client(api_key="abc") as client:
        assert client.headers["X-API-Key"] == "abc"
