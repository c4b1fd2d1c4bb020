"""devstack.prefix, the process between supervisord and each command of `make up`: real
short-lived processes (sh, sleep), no services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _prefix(*command: str, name: str = "demo") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.prefix", "--width", "6", name, "--", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose: it only waits for its parent to reap it.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_lines_are_prefixed_and_the_exit_status_is_the_commands() -> None:
    proc = _prefix("/bin/sh", "-c", "echo one; echo two >&2; printf 'no newline'; exit 3")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert out.decode().splitlines() == [
        "demo   | one",
        "demo   | two",
        "demo   | no newline",
        "demo   | exited with status 3",
    ]


def test_a_command_killed_by_a_signal_ends_the_prefixer_by_the_same_signal() -> None:
    proc = _prefix("/bin/sh", "-c", "kill -KILL $$")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert out.decode().splitlines()[-1] == "demo   | killed by SIGKILL"


def test_sigterm_is_forwarded_to_the_commands_group() -> None:
    proc = _prefix("/bin/sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo up; sleep 60 & wait")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"demo   | up\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.decode().splitlines() == ["demo   | got TERM", "demo   | exited with status 0"]


def test_what_the_command_leaves_behind_is_killed() -> None:
    # The leftover holds the output pipe open: the prefixer must not wait for it.
    proc = _prefix("/bin/sh", "-c", "sleep 300 & echo $!; exit 0")
    assert proc.stdout is not None
    leftover = int(proc.stdout.readline().split(b"|")[1])
    started = time.monotonic()
    proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while _alive(leftover):
        assert time.monotonic() < deadline, "the command's leftover is still running"
        time.sleep(0.05)


def test_the_command_dies_with_the_prefixer() -> None:
    proc = _prefix("/bin/sh", "-c", "echo $$; exec sleep 300")
    assert proc.stdout is not None
    command = int(proc.stdout.readline().split(b"|")[1])
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(command):
        assert time.monotonic() < deadline, "the command outlived its prefixer"
        time.sleep(0.05)


@pytest.mark.parametrize("argv", [[], ["--"]])
def test_no_command_is_a_usage_error(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.prefix", "demo", *argv],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
