"""`make up`'s foreground process: supervisord running the Procfile's processes.

`python -m devstack.up --var-dir VAR [--procfile Procfile] [--env-file VAR/stack.env] NAME...`
renders `VAR/supervisord.conf` (devstack.supervisor_conf), then runs `supervisord -n` with the
environment plus the env file's variables, under umask 077, until it ends.

Ctrl-C ends in status 0. GNU make kills itself with any SIGINT it gets, whatever its recipe
does, so when `make up` runs in the foreground of a terminal this hands the terminal to
supervisord's own process group (as a shell's job control does): Ctrl-C then reaches
supervisord alone, which stops every program, and make sees its recipe end in 0. SIGTERM (which
make forwards), SIGINT, SIGHUP and SIGQUIT to this process become a SIGTERM to supervisord.
Ctrl-Z is ignored: a stopped supervisord would hold the terminal that make's shell waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.supervisor_conf import read_procfile, render

STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (no quoting, as `make up` writes them); blanks and `#` lines skipped."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value
    return env


def write_conf(path: Path, text: str) -> None:
    """Write the file readable by its owner only, replacing any older one whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _terminal() -> int | None:
    """The controlling terminal, if this process group is in its foreground."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def run(conf: Path, env: dict[str, str]) -> int:
    """Run supervisord on `conf` until it ends; its exit status (0 after a stop request)."""
    for sig in STOPS:  # until supervisord runs, a stop request stops this process quietly
        signal.signal(sig, lambda *_: sys.exit(0))
    tty = _terminal()
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)  # inherited by supervisord
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
        env=env,
        stdin=subprocess.DEVNULL,
        process_group=0,
    )
    for sig in STOPS:
        signal.signal(sig, lambda *_: _stop(supervisord))
    # Giving the terminal away and taking it back are what a background group may not do
    # unless it ignores SIGTTOU.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    if tty is not None:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, supervisord.pid)
    try:
        returncode = supervisord.wait()
    finally:
        if tty is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, os.getpgrp())
            os.close(tty)
    return returncode if returncode >= 0 else 128 - returncode


def _stop(supervisord: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        supervisord.send_signal(signal.SIGTERM)


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.up", description=__doc__)
    parser.add_argument("--var-dir", type=Path, required=True, help="state: conf, socket, logs")
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--env-file", type=Path, help="NAME=value lines added to the environment")
    parser.add_argument("names", nargs="+", help="the Procfile entries to run")
    parsed = parser.parse_args(args)
    os.umask(0o077)
    var_dir = parsed.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        text = render(
            read_procfile(parsed.procfile.read_text()),
            parsed.names,
            var_dir,
            Path.cwd(),
            sys.executable,
        )
    except (OSError, ValueError) as exc:
        sys.exit(f"make up: {exc}")
    conf = var_dir / "supervisord.conf"
    write_conf(conf, text)
    env = dict(os.environ)
    if parsed.env_file is not None:
        env.update(read_env_file(parsed.env_file))
    sys.exit(run(conf, env))


if __name__ == "__main__":
    main()
