"""MLflow's scoring protocol: not served yet (its adapter lands next)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.protocols.dispatch import HotRoute

router = APIRouter()
HOT_ROUTES: tuple[HotRoute, ...] = ()
