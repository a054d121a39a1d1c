"""A guardian's own data: export it all, or delete it all (relay/school/guardian_data.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from relay.api.deps import CurrentGuardian, RuntimeDep
from relay.api.errors import ApiError, documented
from relay.school import guardian_data

router = APIRouter(prefix="/v1/me", tags=["my data"], responses=documented(401, 403, 503))


class Deleted(BaseModel):
    deleted_requests: int


@router.get("/export")
async def export_my_data(guardian: CurrentGuardian, runtime: RuntimeDep) -> dict[str, Any]:
    """Everything Relay holds about the caller's requests: each with its timeline, and the bindings and consent."""
    return guardian_data.export(runtime, guardian.school, guardian.id)


@router.delete("/data", response_model=Deleted, responses=documented(409))
async def delete_my_data(guardian: CurrentGuardian, runtime: RuntimeDep) -> Deleted:
    """Delete the caller's requests, timelines, idempotency keys and WeChat bindings. Not undoable.
    Refused (409 `open_emergency`) while one of their emergencies is still being handled."""
    try:
        return Deleted(deleted_requests=guardian_data.delete(runtime, guardian.school.id, guardian.id))
    except guardian_data.OpenEmergency as exc:
        raise ApiError(409, "open_emergency",
                       "学校正在处理您的紧急请求，办结后才能删除数据 (an emergency of yours is still open: "
                       f"delete once it is closed) {', '.join(exc.request_ids)}") from exc
