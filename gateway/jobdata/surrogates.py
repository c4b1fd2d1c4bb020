"""Unpaired surrogate escapes in a JSON upload, which yajl would read wrongly rather than refuse.

JSON spells a character past U+FFFF as two escapes, a high surrogate then a low one
(`\\ud83d\\ude00`). orjson refuses a high one without its low one, as the sync API does; yajl
reads it as `?` (or joins it to the escape after it), which would change an id without a word.
`SurrogateCheck` finds them in the raw bytes, a block at a time, so the JSON reader refuses them
as orjson did. (A lone low surrogate needs no check: yajl makes it bytes that are not UTF-8.)
"""

from __future__ import annotations

import re

HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
#: A high escape and the low one after it.
PAIR_BYTES = 12
#: Bytes of a block kept for the next one: a pair split between them is seen whole there, with
#: some of the backslashes before it.
CARRY_BYTES = 32


class SurrogateCheck:
    """Fed the upload block by block; `found` once a high surrogate escape lacks its low one."""

    def __init__(self) -> None:
        self.carry = b""
        self.found = False

    def feed(self, block: bytes, *, last: bool = False) -> None:
        """Look at `block` (and the end of the one before); `last`: nothing comes after it."""
        window = self.carry + block
        # Escapes before `fresh` were looked at with the block before; those from `done` on
        # will be with the next one, once the six bytes after them are there.
        fresh = max(len(self.carry) - PAIR_BYTES, 0)
        done = len(window) if last else len(window) - PAIR_BYTES
        self.carry = window[-CARRY_BYTES:]
        if b"\\u" not in window:  # most uploads: no escape at all
            return
        # finditer's end bounds where a match ends: this one finds those that start before done.
        for match in HIGH.finditer(window, fresh, done + 5):
            at = match.start()
            if _escaped(window, at):
                continue  # `\\ud800` is a backslash and text, not an escape
            if LOW.match(window, match.end()) is None:
                self.found = True
                return


def _escaped(window: bytes, at: int) -> bool:
    """Whether the backslash at `at` is itself escaped: an odd run of backslashes before it."""
    run = at - len(window[:at].rstrip(b"\\"))
    return run % 2 == 1
