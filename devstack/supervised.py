"""A running `make up` seen from outside: its programs' pids, through its control socket.

supervisord knows the pid of each program's `devstack.prefix`; the command itself (the gateway,
the worker, redis-server) is that process's one child. Tests and `make soak` kill the command,
as a crash would, and watch it come back.
"""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from devstack.supervisor_conf import socket_path

SUPERVISORCTL = [sys.executable, "-m", "supervisor.supervisorctl"]


class Supervised:
    """The stack whose supervisord.conf is in `var_dir`."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.conf = var_dir / "supervisord.conf"

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`supervisorctl ARGS...` against this stack (its exit status is not checked)."""
        return subprocess.run(
            [*SUPERVISORCTL, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, tuple[str, int | None]]:
        """Each program's state (RUNNING, STARTING, BACKOFF, EXITED, FATAL...) and, while it
        runs, its prefixer's pid; by program name (`gateway`, not `app:gateway`). Asked over
        XML-RPC: supervisorctl's `status` shows no pid while a program is STARTING."""
        transport = SupervisorTransport("", "", f"unix://{socket_path(self.var_dir)}")
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            infos: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()  # type: ignore[assignment]
        finally:
            transport.close()
        return {info["name"]: (info["statename"], info["pid"] or None) for info in infos}

    def states(self) -> dict[str, str]:
        """Each program's state, by name."""
        return {name: state for name, (state, _) in self.status().items()}

    def pids(self) -> dict[str, int | None]:
        """The pid of each program's command itself (None when it does not run), by name."""
        return {name: _child(pid) for name, (_, pid) in self.status().items()}

    def pid(self, name: str) -> int | None:
        """The pid of `name`'s command itself, or None when it is not running."""
        return self.pids().get(name)


def _child(prefixer: int | None) -> int | None:
    """The one child of a prefixer: the command."""
    if prefixer is None:
        return None
    try:
        children = Path(f"/proc/{prefixer}/task/{prefixer}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None
