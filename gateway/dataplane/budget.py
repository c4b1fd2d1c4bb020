"""Registry calls that a request causes, bounded per owner rather than by one global budget.

A request for a pinned version or an alias that is not in memory asks the registry (a version
lookup, an alias lookup) in a thread. Clients choose those names, so one owner flooding unknown
versions or random aliases could otherwise hold every slot and thread, and starve everyone
else's pins and job polling. Each owner may have `per_owner` such calls in flight at once; past
that its next one is answered 503 `overloaded` with Retry-After at once, without a registry
call. The owner is the caller's, set by authentication for the request (`owner_var`); calls
made by the gateway itself (refreshes, verdicts) carry none and are not counted here.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.http.errors import Overloaded
from gateway.metrics import REGISTRY_BUDGET_REFUSED

#: The owner of the key that authenticated the current request (None: the gateway's own work).
owner_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("owner", default=None)


class RegistryBudget:
    """In-flight registry calls per owner, at most `per_owner` each."""

    def __init__(self, per_owner: int) -> None:
        self.per_owner = per_owner
        self._in_flight: dict[str, int] = {}  # only owners with calls in flight: bounded

    @contextmanager
    def spend(self) -> Iterator[None]:
        """Hold one of the current owner's slots for the block; raises Overloaded if none."""
        owner = owner_var.get()
        if owner is None:
            yield
            return
        held = self._in_flight.get(owner, 0)
        if held >= self.per_owner:
            REGISTRY_BUDGET_REFUSED.inc()
            raise Overloaded("this owner's registry lookups are all in flight; retry shortly")
        self._in_flight[owner] = held + 1
        try:
            yield
        finally:
            left = self._in_flight[owner] - 1
            if left:
                self._in_flight[owner] = left
            else:
                del self._in_flight[owner]
