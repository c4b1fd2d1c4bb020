"""The outside clients' venv: tritonclient and KServe in a venv of their own, built once per lock.

Their pins clash with the project's (tritonclient[http] wants greenlet<3.4, kserve wants
pandas<3), so `tests/integration/test_outside_clients.py` runs them in `var/clients-venv`, a
venv built from `tests/clients/requirements.lock` (every package pinned, installed with
`--no-deps` and checked with `pip check`). The venv is keyed by the lock's sha256, written in a
stamp file inside it once the install has succeeded: a venv whose stamp matches is reused as it
is, any other (no stamp, an older lock, a build that died half-way) is removed and built again.
A file lock (`fcntl.flock`) beside the venv makes pytest-xdist workers that ask for it at the
same time build it once: the others wait, then find it stamped.

`python -m devstack.clients_venv` builds or reuses it (the Makefile's `clients-venv`) and says
which, and how long it took.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "tests" / "clients" / "requirements.lock"
VENV = REPO / "var" / "clients-venv"
#: Inside the venv: the sha256 of the lock it was built from, written last.
STAMP = ".modelgate-lock-sha256"

#: Builds a venv at its first argument from the lock file at its second.
Builder = Callable[[Path, Path], None]


def lock_digest(lock: Path) -> str:
    """The venv's key: the sha256 of the lock file's bytes."""
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def stamped_digest(venv: Path) -> str | None:
    """The digest a finished build stamped into `venv`, or None (none, or no build finished)."""
    try:
        return (venv / STAMP).read_text().strip() or None
    except OSError:
        return None


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_current(venv: Path, digest: str) -> bool:
    """Whether `venv` was built from the lock of `digest` and still has its interpreter."""
    return stamped_digest(venv) == digest and python_of(venv).exists()


def base_python() -> str:
    """The interpreter a new venv is made from: this one's base, never a venv's own python."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def pip_build(venv: Path, lock: Path, python: str | None = None) -> None:
    """`python -m venv`, then every pinned package of the lock (`--no-deps`), then a check of
    their requirements: with uv when this venv has it (`make venv` installs it: seconds, where
    pip takes a minute), else with pip.

    pip's `--no-compile`: byte-compiling every module of kubernetes and grpc-tools took about a
    third of its build, for modules the scripts never import; uv compiles in parallel, and
    must: where PYTHONDONTWRITEBYTECODE is set, nothing compiled later is kept."""
    subprocess.run([python or base_python(), "-m", "venv", str(venv)], check=True)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is not None:
        target = ["--python", str(python_of(venv))]
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--compile-bytecode", *target, "--no-deps", "-r",
             str(lock)],
            check=True,
        )  # fmt: skip
        subprocess.run([uv, "pip", "check", "--quiet", *target], check=True)
        return
    pip = [str(python_of(venv)), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-compile", "-r", str(lock)], check=True
    )
    subprocess.run([*pip, "check"], check=True, stdout=subprocess.DEVNULL)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing); waits for any other holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(venv: Path) -> Path:
    """The file lock of `venv`: beside it, so that removing the venv never removes the lock."""
    return venv.parent / f".{venv.name}.lock"


def ensure(venv: Path = VENV, lock: Path = LOCK, builder: Builder = pip_build) -> bool:
    """Make `venv` the build of `lock`: reuse it when its stamp matches, else build it afresh.

    Returns whether it was built. Concurrent callers (threads or processes) build it once.
    """
    digest = lock_digest(lock)
    with file_lock(lock_path(venv)):
        if is_current(venv, digest):
            return False
        shutil.rmtree(venv, ignore_errors=True)
        builder(venv, lock)
        stamp = venv / f"{STAMP}.tmp"
        stamp.write_text(digest + "\n")
        stamp.replace(venv / STAMP)
        return True


class ClientScriptError(RuntimeError):
    """A script run in the client venv exited non-zero or printed no JSON."""


def script_env(venv: Path) -> dict[str, str]:
    """This process's environment as the venv's own: nothing of the caller's venv leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_script(
    script: Path, payload: Any, venv: Path = VENV, timeout: float = 240, args: Sequence[str] = ()
) -> Any:
    """Run `script` with the venv's python, `payload` as JSON in argv[1]: its last stdout line,
    parsed as JSON. Its stderr is kept for the error when it fails."""
    argv = [str(python_of(venv)), str(script), json.dumps(payload), *args]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=script_env(venv), cwd=REPO
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise ClientScriptError(
            f"{script.name} exited {done.returncode}\n--- stdout:\n{done.stdout[-4000:]}"
            f"\n--- stderr:\n{done.stderr[-8000:]}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ClientScriptError(
            f"{script.name} printed no JSON last ({error})\n--- stdout:\n{done.stdout[-4000:]}"
            f"\n--- stderr:\n{done.stderr[-8000:]}"
        ) from error


def main() -> None:
    start = time.monotonic()
    built = ensure()
    verb = "built" if built else "reused"
    print(f"{VENV}: {verb} in {time.monotonic() - start:.1f} s ({LOCK.name} {lock_digest(LOCK)})")


if __name__ == "__main__":
    main()
