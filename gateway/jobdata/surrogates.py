"""Unpaired surrogate escapes in a JSON upload, which yajl would read wrongly rather than refuse.

JSON spells a character past U+FFFF as two escapes, a high surrogate then a low one
(`\\ud83d\\ude00`). orjson refuses a high one without its low one, as the sync API does; yajl
reads it as `?` (or joins it to the escape after it), which would change an id without a word.
`SurrogateCheck` finds them in the raw bytes, a block at a time, so the JSON reader refuses them
as orjson did. (A lone low surrogate needs no check: yajl makes it bytes that are not UTF-8.)

A `\\u` is an escape only after an even run of backslashes (`\\\\ud800` is a backslash and text),
and a run may be of any length, longer than what is kept of a block: the parity of the run that
ends where the kept bytes begin is carried from block to block with them.
"""

from __future__ import annotations

import re

#: A high surrogate escape with the whole run of backslashes before it (the `\\` of the escape
#: its last): an escape when the run is odd.
HIGH = re.compile(rb"(?<!\\)(\\+)u[dD][89abAB][0-9a-fA-F]{2}")
LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
#: A high escape and the low one after it.
PAIR_BYTES = 12
#: Bytes of a block kept for the next one: a pair split between them is seen whole there.
CARRY_BYTES = 32
BACKSLASH = ord("\\")


class SurrogateCheck:
    """Fed the upload block by block; `found` once a high surrogate escape lacks its low one."""

    def __init__(self) -> None:
        self.carry = b""
        #: Whether the run of backslashes just before `carry` (over any blocks) is odd.
        self.odd_before = False
        self.found = False

    def feed(self, block: bytes, *, last: bool = False) -> None:
        """Look at `block` (and the end of the one before); `last`: nothing comes after it."""
        window = self.carry + block
        odd_before = self.odd_before
        # Escapes before `fresh` were looked at with the block before; those from `done` on
        # will be with the next one, once the six bytes after them are there.
        fresh = max(len(self.carry) - PAIR_BYTES, 0)
        done = len(window) if last else len(window) - PAIR_BYTES
        kept = max(len(window) - CARRY_BYTES, 0)  # where the next carry begins
        self.carry = window[kept:]
        if kept and window[kept - 1] == BACKSLASH:
            self.odd_before = _odd_run(window, kept, odd_before)
        elif kept:
            self.odd_before = False
        if b"\\u" not in window:  # most uploads: no escape at all
            return
        # finditer's end bounds where a match ends: this one finds escapes that start before
        # done. It starts at 0, not at fresh, so that each match has its whole run.
        for match in HIGH.finditer(window, 0, done + 5):
            at = match.end() - 6  # the escape's backslash
            if at < fresh:
                continue
            odd = (at + 1 - match.start()) % 2 == 1
            if match.start() == 0:
                odd ^= odd_before  # the run began before the window
            if not odd:
                continue  # `\\ud800` is a backslash and text, not an escape
            if LOW.match(window, match.end()) is None:
                self.found = True
                return


def _odd_run(window: bytes, end: int, odd_before: bool) -> bool:
    """Whether the run of backslashes that ends at `end` of `window` is odd, counting the run
    before the window (odd when `odd_before`) if it reaches the window's start."""
    head = window[:end]
    run = end - len(head.rstrip(b"\\"))
    odd = run % 2 == 1
    return odd ^ odd_before if run == end else odd
