"""Run one command of `make up` with its output prefixed by its name, line by line.

`python -m devstack.prefix [--width N] NAME -- COMMAND...`. supervisord cannot prefix a
program's output, so this sits between them. The command runs in its own process group, its
stdout and stderr merged and written as whole `NAME | line` lines. Signals to this process
(supervisord's SIGTERM) are forwarded to the command's group; when the command ends, what is left
of its group (MLflow's workers, a Celery pool) is killed, so that a restart finds its ports free.
This process then ends the same way as the command (its exit status, or its signal), so
supervisord sees the command's own exit, and it tells `devstack.supervisor_events` how the
command ended (a PROCESS_COMMUNICATION event; a plain `NAME | ...` line outside supervisord).
The command is killed if this process dies, and this process gets SIGTERM if supervisord dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
#: A line longer than this is written in pieces rather than held in memory.
MAX_LINE = 64 * 1024
#: After the command ended, how long its group's leftovers may keep its output pipe open.
DRAIN_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
BEGIN = b"<!--XSUPERVISOR:BEGIN-->"
END = b"<!--XSUPERVISOR:END-->"


def describe(returncode: int) -> str:
    """How a process ended (a `Popen.returncode`): `exited with status 1`, `killed by SIGTERM`."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


def _die_with_parent(sig: int) -> None:
    """Ask the kernel for `sig` when this process's parent dies (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


class Prefixer:
    """Copies a pipe to stdout as `prefix + line` writes of whole lines."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.pending = b""

    def feed(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        if len(self.pending) > MAX_LINE:
            lines.append(self.pending)
            self.pending = b""
        if lines:
            _write(b"".join(self.prefix + line + b"\n" for line in lines))

    def close(self) -> None:
        if self.pending:
            _write(self.prefix + self.pending + b"\n")
            self.pending = b""


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def run(name: str, width: int, argv: Sequence[str]) -> int:
    """Run `argv` prefixed; return its `returncode` (negative: the signal that killed it)."""
    parent = os.getppid()
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took
        return -signal.SIGTERM
    child = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
        preexec_fn=lambda: _die_with_parent(signal.SIGKILL),
    )
    assert child.stdout is not None
    for sig in FORWARDED:
        signal.signal(sig, lambda sig, _frame: _signal_group(child.pid, sig))
    out = Prefixer(f"{name:<{width}} | ".encode())
    pipe = child.stdout.fileno()
    exited = os.pidfd_open(child.pid)
    open_fds = [pipe, exited]
    drain_until: float | None = None
    while open_fds:
        timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
        ready, _, _ = select.select(open_fds, [], [], timeout)
        if not ready:  # the drain ran out: leftovers we could not kill still hold the pipe
            break
        if pipe in ready:
            data = os.read(pipe, 65536)
            if data:
                out.feed(data)
            else:
                open_fds.remove(pipe)
        if exited in ready and exited in open_fds:
            open_fds.remove(exited)
            child.wait()
            _signal_group(child.pid, signal.SIGKILL)  # what the command left behind
            drain_until = time.monotonic() + DRAIN_SECONDS
    out.close()
    returncode = child.wait()
    os.close(exited)
    return returncode


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _report(name: str, width: int, how: str) -> None:
    if os.environ.get("SUPERVISOR_ENABLED"):
        _write(BEGIN + how.encode() + END)
    else:
        _write(f"{name:<{width}} | {how}\n".encode())


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.prefix", description=__doc__)
    parser.add_argument("--width", type=int, default=0, help="pad the name to this width")
    parser.add_argument("name")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    parsed = parser.parse_args(args)
    command = parsed.command[1:] if parsed.command[:1] == ["--"] else parsed.command
    if not command:
        parser.error("no command given")
    returncode = run(parsed.name, parsed.width, command)
    _report(parsed.name, parsed.width, describe(returncode))
    if returncode < 0:  # end by the same signal, so supervisord sees how the command ended
        sig = -returncode
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    sys.exit(returncode if returncode >= 0 else 128 - returncode)


if __name__ == "__main__":
    main()
