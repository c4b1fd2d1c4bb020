"""The batched sliding-window checks when Redis forgot the script (gateway/guard/ratelimit.py).

A fake client stands in for Redis: what is tested is which checks are sent again, which a real
server cannot be made to show on demand (its script cache flushed halfway through a pipeline).
"""

from __future__ import annotations

import asyncio
from typing import Any

from limits import parse
from redis.exceptions import NoScriptError

from gateway.guard.ratelimit import SlidingWindow


class ForgetfulRedis:
    """Answers each EVALSHA with the next reply in `replies` (an exception is returned, as
    redis-py does with raise_on_error=False); records what was sent."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.sent: list[list[str]] = []
        self.loaded = 0

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    async def script_load(self, script: str) -> str:
        self.loaded += 1
        return "sha"


class FakePipeline:
    def __init__(self, redis: ForgetfulRedis) -> None:
        self.redis = redis
        self.keys: list[str] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> None:
        self.keys.append(str(args[1]))  # the current window's key names the check

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.redis.sent.append(list(self.keys))
        return [self.redis.replies.pop(0) for _ in self.keys]


def test_only_the_checks_refused_with_noscript_are_sent_again() -> None:
    redis = ForgetfulRedis([[1, 9, 1000], NoScriptError("NOSCRIPT"), [1, 8, 1000], [1, 7, 1000]])
    window = SlidingWindow(redis, "mg:")  # type: ignore[arg-type]
    item = parse("10/minute")

    async def scenario() -> list[tuple[bool, int, float]]:
        return list(
            await asyncio.gather(
                window.acquire(item, "predict", "a"),
                window.acquire(item, "predict", "b"),
                window.acquire(item, "predict", "c"),
            )
        )

    results = asyncio.run(scenario())
    assert redis.loaded == 1
    assert len(redis.sent) == 2 and len(redis.sent[0]) == 3
    assert redis.sent[1] == [redis.sent[0][1]]  # b alone: a and c were counted once already
    assert [r[:2] for r in results] == [(True, 9), (True, 7), (True, 8)]
