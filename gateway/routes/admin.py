"""Admin routes (scope `admin`): reload a model's alias now instead of at the next refresh."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from gateway.deps import AdminKey, StateDep
from gateway.responses import json_response

router = APIRouter(tags=["admin"])


@router.post("/v1/admin/models/{model}/reload")
async def reload_model(model: str, state: StateDep, key: AdminKey) -> Response:
    """Re-resolve the configured alias of `model` and load its version if it changed."""
    spec = state.models.spec_of(model)
    await state.models.refresh(spec)
    return json_response(state.models.describe(spec.name))
