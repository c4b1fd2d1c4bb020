"""`make up`'s supervisord configuration (devstack.supervisor_conf), read back by supervisord's
own parser, and the event listener's lines (devstack.supervisor_events)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally, RestartWhenExitUnexpected
from supervisor.options import ServerOptions

from devstack.supervisor_conf import Entry, read_procfile, render
from devstack.supervisor_events import Narrator

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/venv/bin/python"


def _programs(tmp_path: Path, names: list[str]) -> dict[str, object]:
    """supervisord's own view of the rendered file: program name -> its ProcessConfig."""
    entries = read_procfile((ROOT / "Procfile").read_text())
    conf = tmp_path / "supervisord.conf"
    (tmp_path / "var").mkdir()
    conf.write_text(render(entries, names, tmp_path / "var", ROOT, PYTHON))
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    assert options.nodaemon and options.umask == 0o077
    [server] = options.server_configs
    assert server["chmod"] == 0o600 and server["file"] == str(tmp_path / "var/supervisor.sock")
    return {
        config.name: config
        for group in options.process_group_configs
        for config in group.process_configs
    }


def _groups(tmp_path: Path, names: list[str]) -> dict[str, tuple[int, set[str]]]:
    """supervisord's groups of the rendered file: name -> (priority, program names)."""
    entries = read_procfile((ROOT / "Procfile").read_text())
    conf = tmp_path / "groups.conf"
    conf.write_text(render(entries, names, tmp_path / "var", ROOT, PYTHON))
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    return {
        group.name: (group.priority, {config.name for config in group.process_configs})
        for group in options.process_group_configs
    }


def test_every_procfile_line_runs_as_written_through_the_prefixer(tmp_path: Path) -> None:
    entries = {
        entry.name: entry.command for entry in read_procfile((ROOT / "Procfile").read_text())
    }
    programs = _programs(tmp_path, list(entries))
    assert set(programs) == {*entries, "events"}
    for name, command in entries.items():
        config = programs[name]
        argv = shlex.split(config.command)  # type: ignore[attr-defined]
        # The very line of the Procfile reaches /bin/sh: quotes, ${...} and `%` untouched.
        assert argv[:3] == [PYTHON, "-m", "devstack.prefix"]
        assert argv[-4:] == ["--", "/bin/sh", "-c", command]
        assert config.umask == 0o077  # type: ignore[attr-defined]
        assert config.stdout_logfile == "/dev/stdout"  # type: ignore[attr-defined]


def test_long_running_programs_always_restart_and_the_trainer_only_after_a_failure(
    tmp_path: Path,
) -> None:
    programs = _programs(tmp_path, ["redis", "mlflow", "trainer", "gateway", "worker"])
    trainer = programs["trainer"]
    assert trainer.autorestart is RestartWhenExitUnexpected  # type: ignore[attr-defined]
    assert trainer.exitcodes == [0] and trainer.startsecs == 0  # type: ignore[attr-defined]
    for name in ("redis", "mlflow", "gateway", "worker"):
        config = programs[name]
        assert config.autorestart is RestartUnconditionally, name  # type: ignore[attr-defined]
        assert config.startsecs > 0 and config.startretries > 0  # type: ignore[attr-defined]
    # supervisord stops a group's programs at once, and the app before the Redis it uses.
    groups = _groups(tmp_path, ["redis", "mlflow", "trainer", "gateway", "worker"])
    assert groups["app"][1] == {"mlflow", "trainer", "gateway", "worker"}
    assert groups["data"][1] == {"redis"}
    assert groups["app"][0] > groups["data"][0]


def test_an_external_redis_leaves_the_redis_programs_out(tmp_path: Path) -> None:
    programs = _programs(tmp_path, ["mlflow", "trainer", "gateway", "worker"])
    assert set(programs) == {"events", "mlflow", "trainer", "gateway", "worker"}


def test_a_percent_sign_survives_and_an_inline_comment_is_refused(tmp_path: Path) -> None:
    line = "exec printf '%s\\n' \"100%\""
    text = render([Entry("echo", line)], ["echo"], tmp_path, ROOT, PYTHON)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(text)
    options = ServerOptions()
    options.realize(["-c", str(conf)])
    [echo] = [
        c for g in options.process_group_configs for c in g.process_configs if c.name == "echo"
    ]
    assert shlex.split(echo.command)[-1] == line
    with pytest.raises(ValueError, match="'#'"):
        render([Entry("x", "exec sleep 1 # a comment")], ["x"], tmp_path, ROOT, PYTHON)
    with pytest.raises(ValueError, match="not in the Procfile"):
        render([Entry("x", "true")], ["y"], tmp_path, ROOT, PYTHON)


def test_a_socket_path_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        render([Entry("x", "true")], ["x"], tmp_path / ("d" * 120), ROOT, PYTHON)


def test_the_listener_says_why_a_program_ended_and_what_happens_next() -> None:
    narrator = Narrator(width=10, retries=10, start_seconds=10, one_shot={"trainer"})

    def say(event: str, payload: str) -> str | None:
        return narrator.line(event, payload)

    comm = "PROCESS_COMMUNICATION_STDOUT"
    assert say(comm, "processname:worker groupname:worker pid:7\nkilled by SIGKILL") is None
    exited = "processname:worker groupname:worker from_state:RUNNING expected:0 pid:7"
    assert say("PROCESS_STATE_EXITED", exited) == (
        "worker killed by SIGKILL (unexpected); restarting now"
    )
    say(comm, "processname:redis groupname:redis pid:8\nexited with status 1")
    assert say("PROCESS_STATE_BACKOFF", "processname:redis from_state:STARTING tries:2") == (
        "redis exited with status 1 within 10 s of starting; retry 2 of 10 in 2 s"
    )
    assert say("PROCESS_STATE_FATAL", "processname:redis from_state:BACKOFF") == (
        "redis gave up after 10 retries; the others keep running"
    )
    say(comm, "processname:trainer groupname:trainer pid:9\nexited with status 0")
    done = "processname:trainer from_state:RUNNING expected:1 pid:9"
    assert say("PROCESS_STATE_EXITED", done) == (
        "trainer exited with status 0; done, not restarted"
    )
    assert say("PROCESS_STATE_RUNNING", "processname:worker from_state:STARTING pid:10") is None
    # No word from the prefixer (it was killed itself): still a line, with what is known.
    stopped = "processname:gateway from_state:STOPPING pid:11"
    assert say("PROCESS_STATE_STOPPED", stopped) == "gateway stopped (exited)"
