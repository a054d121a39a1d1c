"""A guardian's own data: export it all, or delete it all (relay/guardian_data.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from relay import guardian_data
from relay.api.deps import CurrentGuardian, RuntimeDep
from relay.api.errors import documented

router = APIRouter(prefix="/v1/me", tags=["my data"], responses=documented(401, 403, 503))


class Deleted(BaseModel):
    deleted_requests: int


@router.get("/export")
async def export_my_data(guardian: CurrentGuardian, runtime: RuntimeDep) -> dict[str, Any]:
    """Everything Relay holds about the caller's requests: each with its timeline, and the bindings and consent."""
    return guardian_data.export(runtime, guardian.school, guardian.id)


@router.delete("/data", response_model=Deleted)
async def delete_my_data(guardian: CurrentGuardian, runtime: RuntimeDep) -> Deleted:
    """Delete the caller's requests, timelines, idempotency keys and WeChat bindings. Not undoable."""
    return Deleted(deleted_requests=guardian_data.delete(runtime, guardian.school.id, guardian.id))
