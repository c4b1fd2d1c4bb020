"""The CLI imports what a command needs and nothing more (its start-up time is in bench/).

Each case runs in a fresh interpreter: the modules a command leaves in `sys.modules` are what
it cost to start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("mlflow", "sklearn", "skops", "onnxruntime", "numpy", "pandas", "fastapi", "celery")

PROBE = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from cli.main import main
    result = CliRunner().invoke(main, sys.argv[1:], catch_exceptions=False)
    top = sorted({name.split(".")[0] for name in sys.modules})
    print(json.dumps({"exit": result.exit_code, "output": result.output, "modules": top}))
    """
)


def loaded_by(*args: str) -> tuple[dict[str, object], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    return answer, set(answer["modules"])


def test_help_lists_every_command_without_importing_the_stack() -> None:
    answer, modules = loaded_by("--help")
    assert answer["exit"] == 0
    for command in ("models", "versions", "train", "import", "optimize", "promote", "keys", "jobs"):
        assert f"  {command} " in str(answer["output"]), command
    assert not modules & {*HEAVY, "redis", "httpx", "pydantic_settings"}, modules & {*HEAVY}


@pytest.mark.parametrize(
    "args",
    [("keys", "--help"), ("jobs", "--help"), ("train", "--help"), ("jobs", "list", "--help")],
)
def test_group_and_command_help_import_nothing_heavy(args: tuple[str, ...]) -> None:
    answer, modules = loaded_by(*args)
    assert answer["exit"] == 0
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_keys_list_needs_redis_but_never_mlflow_or_scikit_learn() -> None:
    # Port 9 (discard) refuses at once: the command fails, having imported what it needed.
    answer, modules = loaded_by("keys", "--redis-url", "redis://127.0.0.1:9/0", "list")
    assert answer["exit"] == 1
    assert "redis" in modules
    assert not modules & {"mlflow", "sklearn", "skops", "onnxruntime", "celery", "fastapi"}
