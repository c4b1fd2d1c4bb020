"""Registry lookups per owner: past the owner's slots, 503 at once; other owners unaffected."""

from __future__ import annotations

import pytest

from gateway.dataplane.budget import RegistryBudget, owner_var
from gateway.http.errors import Overloaded


def test_an_owner_past_its_slots_is_refused_and_others_are_not() -> None:
    budget = RegistryBudget(per_owner=2)
    token = owner_var.set("abuser")
    try:
        with budget.spend(), budget.spend():
            with pytest.raises(Overloaded), budget.spend():
                pass
            other = owner_var.set("someone-else")
            with budget.spend():
                pass
            owner_var.reset(other)
        with budget.spend():  # slots come back when the lookups end
            pass
    finally:
        owner_var.reset(token)
    assert budget._in_flight == {}  # nothing kept for owners with nothing in flight


def test_the_gateways_own_lookups_are_not_counted() -> None:
    budget = RegistryBudget(per_owner=1)
    with budget.spend(), budget.spend():  # no owner: refreshes, verdicts
        pass
