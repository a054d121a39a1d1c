"""Staff actions: acknowledge, claim, reply, resolve, reassign; the queue sorted by due time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from relay.api.bodies import clean_text, parse, read_json
from relay.api.deps import RuntimeDep, StaffCaller, StaffOfSchool
from relay.api.errors import ApiError, documented
from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord
from relay.core import actions, retriage
from relay.core.permissions import can_act
from relay.core.views import staff_view
from routing.labels import Category, Urgency

router = APIRouter(prefix="/v1", tags=["staff"], responses=documented(400, 401, 403, 404, 409, 413, 415, 422, 503))


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = Field(min_length=1, max_length=2000)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # To the parent: the closing message ("text" accepted too, as /reply spells it).
    message: str | None = Field(default=None, max_length=2000, validation_alias=AliasChoices("message", "text"))
    outcome: str | None = Field(default=None, max_length=32)  # back_to_class | picked_up | hospital | other
    note: str | None = Field(default=None, max_length=2000)  # internal


class RetriageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    urgency: Urgency
    category: Category | None = None
    reason: str = Field(min_length=1, max_length=500)


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    to: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


async def _optional_body(request: Request, model: type[BaseModel], max_bytes: int) -> Any:
    raw = await request.body()
    if not raw.strip():
        return model.model_validate({})
    return parse(model, await read_json(request, max_bytes))


def _answer(runtime: RuntimeDep, staff: StaffOfSchool, record: RequestRecord | None) -> dict[str, Any]:
    if record is None:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    return staff_view(runtime, staff.school, record)


def _may_act(runtime: Runtime, staff: StaffCaller, request_id: str) -> None:
    """404 for what is not in the caller's school; 403 for a request of it that is not theirs to act on."""
    record = store.load(runtime.redis, staff.school.id, request_id) if len(request_id) <= 64 else None
    if record is None:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    if not can_act(staff.member, staff.school, record):
        raise ApiError(403, "not_yours", "这条请求不归您处理 (this request is not yours to act on: "
                                         "its class's teachers, the nurse or safety officer, or a leader)")


# Refusals about what the caller sent rather than the request's state.
_UNPROCESSABLE = ("message_required", "unknown_outcome", "unfilled_placeholder")


def _guarded(call: Any) -> RequestRecord | None:
    try:
        result: RequestRecord | None = call()
        return result
    except Conflict as exc:
        raise ApiError(422 if exc.code in _UNPROCESSABLE else 409, exc.code, exc.message) from exc


@router.post("/requests/{request_id}/ack")
async def acknowledge(request_id: str, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """Acknowledge: stops every pending escalation and page for this request."""
    _may_act(runtime, staff, request_id)
    record = _guarded(lambda: actions.acknowledge(runtime, staff.school, request_id, staff.id, "api"))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/claim")
async def claim(request_id: str, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """Take the request as one's own (acknowledges it too)."""
    _may_act(runtime, staff, request_id)
    record = _guarded(lambda: actions.claim(runtime, staff.school, request_id, staff.id))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/reply", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": ReplyBody.model_json_schema()}}, "required": True}})
async def reply(request_id: str, request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    _may_act(runtime, staff, request_id)
    body = parse(ReplyBody, await read_json(request, runtime.settings.max_body_bytes))
    text = clean_text(body.text)
    if not text:
        raise ApiError(422, "empty_text", "请填写回复内容 (text is empty)")
    record = _guarded(lambda: actions.reply(runtime, staff.school, request_id, staff.id, text))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/note", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": ReplyBody.model_json_schema()}}, "required": True}})
async def note(request_id: str, request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """An internal note (the parent does not see it); counts as the update an acknowledged P0 owes."""
    _may_act(runtime, staff, request_id)
    body = parse(ReplyBody, await read_json(request, runtime.settings.max_body_bytes))
    text = clean_text(body.text)
    if not text:
        raise ApiError(422, "empty_text", "请填写内容 (text is empty)")
    record = _guarded(lambda: actions.note(runtime, staff.school, request_id, staff.id, text))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/resolve", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": ResolveBody.model_json_schema()}}, "required": False}})
async def resolve(request_id: str, request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """Close the request. `message` reaches the parent (like a reply); `note` stays internal; `outcome` says
    how it ended. A P0/P1 whose parent has had no reply needs a message: 422 `message_required`."""
    _may_act(runtime, staff, request_id)
    body = await _optional_body(request, ResolveBody, runtime.settings.max_body_bytes)
    note = clean_text(body.note) if body.note else None
    message = clean_text(body.message) if body.message else None
    record = _guarded(lambda: actions.resolve(runtime, staff.school, request_id, staff.id, note,
                                              message=message or None, outcome=body.outcome))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/on-site")
async def on_site(request_id: str, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """The nurse is with the child ("已到场"): acknowledges it too; the parent's page shows it."""
    _may_act(runtime, staff, request_id)
    record = _guarded(lambda: actions.on_site(runtime, staff.school, request_id, staff.id, "api"))
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/reassign", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": ReassignBody.model_json_schema()}}, "required": True}})
async def reassign(request_id: str, request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    _may_act(runtime, staff, request_id)
    body = parse(ReassignBody, await read_json(request, runtime.settings.max_body_bytes))
    record = _guarded(
        lambda: actions.reassign(runtime, staff.school, request_id, staff.id, body.to, clean_text(body.reason))
    )
    return _answer(runtime, staff, record)


@router.post("/requests/{request_id}/retriage", openapi_extra={"requestBody": {"content": {"application/json": {
    "schema": RetriageBody.model_json_schema()}}, "required": True}})
async def retriage_request(request_id: str, request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> dict[str, Any]:
    """Correct the triage. Raising to P0 pages as intake would; lowering disarms the escalation steps the new
    urgency does not have; each change is on the timeline and kept as a correction."""
    body = parse(RetriageBody, await read_json(request, runtime.settings.max_body_bytes))
    reason = clean_text(body.reason)
    if not reason:
        raise ApiError(422, "empty_text", "请说明调整原因 (reason is empty)")
    record = _guarded(lambda: retriage.retriage(runtime, staff.school, request_id, staff.id, body.urgency,
                                                body.category, reason) if _plausible(request_id) else None)
    return _answer(runtime, staff, record)


def _plausible(request_id: str) -> bool:
    return len(request_id) <= 64


@router.get("/queue")
async def queue(
    staff: StaffOfSchool, runtime: RuntimeDep, mine: bool = False, urgency: str | None = None
) -> dict[str, Any]:
    """Open requests of the caller's school, the most pressing due time first."""
    records = store.open_queue(runtime.redis, staff.school.id)
    if mine:
        records = [r for r in records if r.owner == staff.id]
    if urgency:
        records = [r for r in records if r.urgency == urgency]
    return {"requests": [staff_view(runtime, staff.school, r, timeline=False) for r in records]}
