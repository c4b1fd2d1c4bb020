"""The client distribution installs alone: a fresh venv, `pip install client/` (not editable,
from PyPI), and it brings httpx and nothing of the server stack."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIENT = Path(__file__).resolve().parents[2] / "client"
SERVER_STACK = {
    "fastapi",
    "mlflow",
    "mlflow-skinny",
    "scikit-learn",
    "celery",
    "redis",
    "onnxruntime",
    "uvicorn",
    "pandas",
}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run(*argv: str | Path, timeout: float = 240) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_pip_install_brings_httpx_and_no_server_packages(tmp_path: Path) -> None:
    # A copy, so that the build leaves nothing (build/, *.egg-info) in the checkout.
    source = tmp_path / "client"
    shutil.copytree(
        CLIENT,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.pyc"),
    )
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", source)
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json"))
    names = {normal(p["name"]) for p in listed}
    assert {"httpx", "modelgate-client"} <= names, names
    assert not names & SERVER_STACK, names & SERVER_STACK
    version = run(
        python,
        "-c",
        "import sys, modelgate_client as m; "
        "assert 'pandas' not in sys.modules; print(m.__version__, m.Client.__name__)",
    )
    assert version.split() == ["0.1.0", "Client"]
    # Installed, not linked to the checkout.
    where = run(python, "-c", "import modelgate_client; print(modelgate_client.__file__)")
    assert str(venv) in where and (Path(where.strip()).parent / "py.typed").is_file()
