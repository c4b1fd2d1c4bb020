"""supervisord's event listener for `make up`: says why a program exited and what happens next.

It prints one line on the stack's log (its stderr, which supervisord writes to its stdout) per
program that exits, stops or is given up:

    supervisor | worker killed by SIGKILL (unexpected); restarting now
    supervisor | redis exited with status 1 within 10 s of starting; retry 2 of 10 in 2 s
    supervisor | redis gave up after 10 retries; the others keep running
    supervisor | trainer exited with status 0; done, not restarted

How a program ended comes from `devstack.prefix`, which runs each program and sends it as a
PROCESS_COMMUNICATION event just before it exits (supervisord's state events carry no status).
The wire protocol is supervisord's: READY, a header line with `len`, the payload, RESULT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import BinaryIO


class Narrator:
    """Turns supervisord's events into the lines above."""

    def __init__(self, width: int, retries: int, start_seconds: int, one_shot: set[str]) -> None:
        self.width = width
        self.retries = retries
        self.start_seconds = start_seconds
        self.one_shot = one_shot
        #: How each program last ended, as its prefixer said.
        self.how: dict[str, str] = {}

    def line(self, event: str, payload: str) -> str | None:
        """The line to print for one event, or None."""
        header, _, data = payload.partition("\n")
        fields = dict(field.split(":", 1) for field in header.split() if ":" in field)
        name = fields.get("processname", "?")
        if event.startswith("PROCESS_COMMUNICATION"):
            self.how[name] = data.strip()
            return None
        how = self.how.pop(name, "exited") if event in _ENDINGS else ""
        if event == "PROCESS_STATE_EXITED":
            if fields.get("expected") == "1" and name in self.one_shot:
                return f"{name} {how}; done, not restarted"
            unexpected = " (unexpected)" if fields.get("expected") == "0" else ""
            return f"{name} {how}{unexpected}; restarting now"
        if event == "PROCESS_STATE_BACKOFF":
            tries = int(fields.get("tries", "0"))
            if tries > self.retries:  # FATAL follows
                return f"{name} {how} within {self.start_seconds} s of starting"
            return (
                f"{name} {how} within {self.start_seconds} s of starting; "
                f"retry {tries} of {self.retries} in {tries} s"
            )
        if event == "PROCESS_STATE_FATAL":
            return f"{name} gave up after {self.retries} retries; the others keep running"
        if event == "PROCESS_STATE_STOPPED":
            return f"{name} stopped ({how})"
        return None


#: The state events that follow a program's end (and so its prefixer's report).
_ENDINGS = {"PROCESS_STATE_EXITED", "PROCESS_STATE_BACKOFF", "PROCESS_STATE_STOPPED"}


def serve(narrator: Narrator, events: BinaryIO, answers: BinaryIO, log: BinaryIO) -> None:
    """Answer supervisord's events until it closes our stdin."""
    prefix = f"{'supervisor':<{narrator.width}} | ".encode()
    while True:
        answers.write(b"READY\n")
        answers.flush()
        header = events.readline()
        if not header:
            return
        fields = dict(field.split(b":", 1) for field in header.split() if b":" in field)
        payload = events.read(int(fields[b"len"])).decode(errors="replace")
        line = narrator.line(fields[b"eventname"].decode(), payload)
        if line is not None:
            log.write(prefix + line.encode() + b"\n")
            log.flush()
        answers.write(b"RESULT 2\nOK")
        answers.flush()


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.supervisor_events")
    parser.add_argument("--width", type=int, default=0, help="pad the names to this width")
    parser.add_argument("--retries", type=int, required=True, help="supervisord's startretries")
    parser.add_argument("--start-seconds", type=int, required=True, help="its startsecs")
    parser.add_argument("--one-shot", action="append", default=[], help="a program that ends")
    parsed = parser.parse_args(args)
    narrator = Narrator(parsed.width, parsed.retries, parsed.start_seconds, set(parsed.one_shot))
    serve(narrator, sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)


if __name__ == "__main__":
    main()
