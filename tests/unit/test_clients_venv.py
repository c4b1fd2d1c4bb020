"""The outside clients' venv (devstack/clients_venv.py): keyed by its lock, built once at a time."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from devstack import clients_venv


def fake_builder(calls: list[Path], pause: float = 0.0):
    """A builder that makes only what `is_current` looks at (bin/python) and counts its calls."""

    def build(venv: Path, lock: Path) -> None:
        calls.append(venv)
        time.sleep(pause)
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)

    return build


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text("tritonclient==2.73.0\n")
    return path


def test_the_key_is_the_sha256_of_the_lock(lock: Path):
    assert clients_venv.lock_digest(lock) == hashlib.sha256(lock.read_bytes()).hexdigest()


def test_built_once_then_reused_until_the_lock_changes(tmp_path: Path, lock: Path):
    venv, calls = tmp_path / "venv", []
    builder = fake_builder(calls)
    assert clients_venv.ensure(venv, lock, builder) is True
    assert clients_venv.stamped_digest(venv) == clients_venv.lock_digest(lock)
    (venv / "kept").write_text("")
    assert clients_venv.ensure(venv, lock, builder) is False
    assert len(calls) == 1 and (venv / "kept").exists()
    lock.write_text("tritonclient==2.73.0\nkserve==0.21.0\n")
    assert clients_venv.ensure(venv, lock, builder) is True
    assert len(calls) == 2 and not (venv / "kept").exists()  # built afresh, not over the old
    assert clients_venv.stamped_digest(venv) == clients_venv.lock_digest(lock)


def test_a_build_that_failed_is_never_taken_as_done(tmp_path: Path, lock: Path):
    venv = tmp_path / "venv"

    def broken(venv: Path, lock: Path) -> None:
        (venv / "bin").mkdir(parents=True)
        raise RuntimeError("pip failed")

    with pytest.raises(RuntimeError):
        clients_venv.ensure(venv, lock, broken)
    assert clients_venv.stamped_digest(venv) is None
    calls: list[Path] = []
    assert clients_venv.ensure(venv, lock, fake_builder(calls)) is True and len(calls) == 1


def test_a_stamped_venv_without_its_python_is_rebuilt(tmp_path: Path, lock: Path):
    venv, calls = tmp_path / "venv", []
    clients_venv.ensure(venv, lock, fake_builder(calls))
    (venv / "bin" / "python").unlink()
    assert not clients_venv.is_current(venv, clients_venv.lock_digest(lock))
    assert clients_venv.ensure(venv, lock, fake_builder(calls)) is True and len(calls) == 2


def test_concurrent_callers_build_it_once(tmp_path: Path, lock: Path):
    """Each caller opens the lock file itself, as separate pytest-xdist workers do."""
    venv, calls = tmp_path / "venv", []
    builder = fake_builder(calls, pause=0.3)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(clients_venv.ensure(venv, lock, builder)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert sorted(results) == [False, False, False, True]


def test_the_lock_file_lives_beside_the_venv(tmp_path: Path):
    venv = tmp_path / "var" / "clients-venv"
    assert clients_venv.lock_path(venv).parent == venv.parent
    assert not clients_venv.lock_path(venv).is_relative_to(venv)


def test_run_script_returns_the_last_json_line(tmp_path: Path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = tmp_path / "echo.py"
    script.write_text(
        "import json, os, sys\n"
        "print('a library said hello')\n"
        "print(json.dumps({'got': json.loads(sys.argv[1]), 'venv': os.environ['VIRTUAL_ENV']}))\n"
    )
    assert clients_venv.run_script(script, {"rows": [[1.5]]}, venv) == {
        "got": {"rows": [[1.5]]},
        "venv": str(venv),
    }


def test_run_script_failure_carries_its_output(tmp_path: Path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('partial')\nsys.exit('no client here')\n")
    with pytest.raises(clients_venv.ClientScriptError, match="no client here"):
        clients_venv.run_script(script, {}, venv)
    script.write_text("print('not json')\n")
    with pytest.raises(clients_venv.ClientScriptError, match="not json"):
        clients_venv.run_script(script, json.dumps({}), venv)
