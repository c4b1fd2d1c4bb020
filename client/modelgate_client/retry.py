"""When a request is sent again, and how long the client waits before it does.

Retried, up to `attempts` tries in all:

- answers whose status is in `statuses` (429 and 503: the gateway did not act on them), after
  their `Retry-After` seconds (at most `max_wait`), or, without that header, after an
  exponential backoff (`backoff`, then twice that, ..., at most `max_wait`);
- answers whose error code the call names as retryable (a job submission retries
  `idempotency_in_progress`), with the backoff;
- connection errors and timeouts of calls that are safe to repeat (GET, DELETE, predictions,
  and job submissions, which carry an `Idempotency-Key`), with the backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class Retry:
    """The retry policy; `Retry(attempts=1)` (or `retry=0` on a client) never retries."""

    attempts: int = 3
    max_wait: float = 30.0
    backoff: float = 0.5
    statuses: frozenset[int] = frozenset({429, 503})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try: it must be at least 1")
        if self.max_wait < 0 or self.backoff < 0:
            raise ValueError("max_wait and backoff must not be negative")

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1 for the first)."""
        return float(min(self.max_wait, self.backoff * 2 ** max(0, attempt - 1)))

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait after try `attempt`: the server's `Retry-After` when it sent one,
        else the backoff; never more than `max_wait`."""
        if retry_after is not None:
            return float(min(self.max_wait, max(0.0, retry_after)))
        return self.backoff_delay(attempt)

    def can_retry(self, attempt: int) -> bool:
        """Whether try number `attempt` may be followed by another."""
        return attempt < self.attempts


NO_RETRY = Retry(attempts=1)

RetryLike = Union[Retry, int, None]


def as_retry(value: RetryLike) -> Retry:
    """A policy from a client's `retry` argument: a Retry, a number of retries (0 or None:
    none), as `Retry(attempts=n + 1)`."""
    if isinstance(value, Retry):
        return value
    if value is None:
        return NO_RETRY
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("retry must be a Retry or a number of retries (>= 0)")
    return Retry(attempts=value + 1)
