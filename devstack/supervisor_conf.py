"""supervisord's configuration for `make up`, rendered from the Procfile's entries.

The Procfile stays the one list of processes. Each entry becomes a supervisord program that runs
its line under `/bin/sh -c` through `devstack.prefix` (its output prefixed with its name, as
one interleaved log on supervisord's stdout). A long-running program is restarted whenever it
exits: at once after it ran for `START_SECONDS`, else with supervisord's backoff (1 s, 2 s, ...)
for up to `START_RETRIES` tries, then given up (FATAL) while the others keep running. A one-shot
program (the trainer) is restarted only after a failure. `devstack.supervisor_events` says on
the same log why a program exited and what happens next. Everything runs under umask 077 and
the control socket (for `make status` and `make down`) is the owner's only. In supervisorctl
the programs are `app:mlflow`, `app:trainer`, `app:gateway`, `app:worker`, `data:redis` and
`data:cache`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Programs that finish: restarted only after an unexpected exit status (0 is expected).
ONE_SHOT = frozenset({"trainer"})
#: supervisord stops one group after another, highest priority first, and a group's programs
#: all at once: MLflow, the trainer, the gateway and the worker (group `app`) first, while the
#: Redis servers the worker acknowledges its chunks to (group `data`) still run; then those.
#: Every group starts at once.
DATA = ("redis", "cache")
GROUP_PRIORITY = {"data": 100, "app": 400}
#: A long-running program that exits sooner than this after its start counts as a failed start.
START_SECONDS = 10
START_RETRIES = 10
#: After SIGTERM, the seconds a program has to exit before supervisord sends SIGKILL.
STOP_WAIT_SECONDS = 15
#: The prefix column of the event listener's lines.
EVENTS_NAME = "supervisor"
#: A unix socket's path has room for 107 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Entry:
    """One Procfile line: a process name and its shell command."""

    name: str
    command: str


def read_procfile(text: str) -> list[Entry]:
    """The entries of a Procfile (`name: command` lines; blank lines and `#` comments skipped)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.isidentifier() or not command.strip():
            raise ValueError(f"Procfile line {number} is not `name: command`: {line!r}")
        entries.append(Entry(name, command.strip()))
    return entries


def socket_path(var_dir: Path) -> Path:
    """The supervisord control socket of a stack whose state lives in `var_dir`."""
    return var_dir / "supervisor.sock"


def render(
    entries: Sequence[Entry], names: Sequence[str], var_dir: Path, workdir: Path, python: str
) -> str:
    """supervisord.conf running the entries called `names`, in `workdir`, state in `var_dir`."""
    by_name = {entry.name: entry for entry in entries}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"not in the Procfile: {', '.join(unknown)}")
    sock = socket_path(var_dir)
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise ValueError(f"the control socket's path is too long for a unix socket: {sock}")
    width = max(len(name) for name in [*names, EVENTS_NAME])
    listener = [python, "-m", "devstack.supervisor_events", "--width", str(width)]
    listener += ["--retries", str(START_RETRIES), "--start-seconds", str(START_SECONDS)]
    for name in sorted(ONE_SHOT.intersection(names)):
        listener += ["--one-shot", name]
    sections = [
        "; Rendered by devstack.up from the Procfile at every `make up`: edits are overwritten.",
        _section(
            "supervisord",
            nodaemon="true",
            # Its own log goes to the file; the event listener tells the terminal what matters.
            silent="true",
            logfile=var_dir / "supervisord.log",
            logfile_maxbytes="1MB",
            logfile_backups=1,
            pidfile=var_dir / "supervisord.pid",
            childlogdir=var_dir,
            umask="077",
        ),
        _section("unix_http_server", file=sock, chmod="0600"),
        _section("supervisorctl", serverurl=f"unix://{sock}"),
        _section(
            "rpcinterface:supervisor",
            **{"supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"},
        ),
        _section(
            "eventlistener:events",
            command=_command(listener),
            events="PROCESS_STATE,PROCESS_COMMUNICATION",
            buffer_size=1000,
            # Started first and stopped last, so that it reports every other program's stop.
            priority=1,
            directory=workdir,
            umask="077",
            stdout_logfile="NONE",  # its stdout is the protocol
            stderr_logfile="/dev/stdout",
            stderr_logfile_maxbytes=0,
        ),
    ]
    for name in names:
        sections.append(_program(by_name[name], width, workdir, python))
    for group, priority in GROUP_PRIORITY.items():
        members = [name for name in names if (name in DATA) == (group == "data")]
        if members:
            sections.append(
                _section(f"group:{group}", programs=",".join(members), priority=priority)
            )
    return "\n\n".join(sections) + "\n"


def _program(entry: Entry, width: int, workdir: Path, python: str) -> str:
    argv = [python, "-m", "devstack.prefix", "--width", str(width), entry.name, "--"]
    argv += ["/bin/sh", "-c", entry.command]
    one_shot = entry.name in ONE_SHOT
    return _section(
        f"program:{entry.name}",
        command=_command(argv),
        directory=workdir,
        autorestart="unexpected" if one_shot else "true",
        exitcodes=0,
        startsecs=0 if one_shot else START_SECONDS,
        startretries=START_RETRIES,
        # The prefixer forwards the signal to the command's process group.
        stopsignal="TERM",
        stopwaitsecs=STOP_WAIT_SECONDS,
        umask="077",
        redirect_stderr="true",
        stdout_logfile="/dev/stdout",
        stdout_logfile_maxbytes=0,
        # Room for the prefixer's last word to the event listener (how the command ended).
        stdout_capture_maxbytes="4KB",
    )


def _command(argv: Sequence[str]) -> str:
    """One `command=` value: supervisord splits it as a shell would and expands `%(...)s`."""
    text = shlex.join(argv).replace("%", "%%")
    # supervisord's config parser cuts a value at an inline comment (` ;` or ` #`), quotes or not.
    for marker in (" ;", " #", "\t;", "\t#"):
        if marker in text:
            raise ValueError(f"{marker.strip()!r} after a space cannot be in a command: {text}")
    return text


def _section(title: str, **options: object) -> str:
    lines = [f"[{title}]"] + [f"{key}={value}" for key, value in options.items()]
    return "\n".join(lines)
