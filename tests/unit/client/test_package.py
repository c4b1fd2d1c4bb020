"""The client distribution itself: Python 3.9 syntax, small modules, a light import (no
pandas), its version and dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import modelgate_client

CLIENT = Path(__file__).resolve().parents[3] / "client"
PACKAGE = CLIENT / "modelgate_client"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_where_expected() -> None:
    assert Path(modelgate_client.__file__).resolve().parent == PACKAGE
    assert (PACKAGE / "py.typed").is_file() and len(MODULES) >= 8


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_every_module_is_python_3_9_and_small(path: Path) -> None:
    source = path.read_text()
    ast.parse(source, str(path), feature_version=(3, 9))
    assert len(source.splitlines()) <= 300
    assert path.name not in ("utils.py", "helpers.py")


def test_pyproject_names_version_and_ranges() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "modelgate-client"
    assert project["version"] == modelgate_client.__version__ == "0.1.0"
    assert project["requires-python"] == ">=3.9"
    assert project["dependencies"] == ["httpx>=0.25,<1"]
    assert project["optional-dependencies"] == {"pandas": ["pandas>=1.5"]}
    assert not any("==" in d for d in project["dependencies"])


def test_import_is_light_and_does_not_import_pandas() -> None:
    """The CLI imports the package to find its settings: that loads neither httpx nor pandas;
    the clients load httpx on first use, and pandas stays out until a DataFrame function."""
    code = (
        "import sys, time\n"
        "started = time.perf_counter()\n"
        "import modelgate_client as mg\n"
        "print(time.perf_counter() - started)\n"
        "heavy = {'httpx', 'pandas', 'numpy', 'fastapi', 'mlflow', 'redis'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "mg.find_connection(), mg.Retry(), mg.NotFound('x')\n"
        "from modelgate_client import AsyncClient, Client, Job, Prediction, format_for_path\n"
        "assert mg.Client is Client and 'Client' in dir(mg) and 'httpx' in sys.modules\n"
        "assert 'pandas' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0


def test_every_public_name_is_there() -> None:
    for name in modelgate_client.__all__:
        assert getattr(modelgate_client, name) is not None, name
    with pytest.raises(AttributeError):
        _ = modelgate_client.NoSuchName  # type: ignore[attr-defined]
