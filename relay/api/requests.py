"""Parents' requests: submit one, see one (with its timeline), list their own."""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from relay.api import shedding
from relay.api.bodies import clean_text, parse, read_json
from relay.api.deps import CurrentGuardian, RuntimeDep, current_staff
from relay.api.errors import ApiError, documented
from relay.base import store, tokens
from relay.core import audit, followups, ratelimit, retriage
from relay.core.intake import (
    IdempotencyMismatch,
    Limits,
    Outcome,
    Submission,
    first_timeline,
    submit,
    triage,
)
from relay.core.ratelimit import Limit
from relay.core.views import parent_view, staff_view
from routing.labels import Urgency

router = APIRouter(prefix="/v1", tags=["requests"],
                   responses=documented(400, 401, 403, 404, 413, 415, 422, 429, 503))

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    student_id: str = Field(min_length=1, max_length=64)
    # Documented as at least one character; checked after cleaning (invisible characters removed), so
    # that "" and "\u200b" alike get 422 `empty_text` rather than pydantic's generic refusal.
    text: str = Field(json_schema_extra={"minLength": 1})
    category_hint: str | None = Field(default=None, max_length=32)
    urgent: bool = False


class RequestView(BaseModel):
    id: str
    status: str
    urgency: str
    category: str
    owner: str
    owner_name: str | None = None
    ack_due_at: str | None
    resolve_due_at: str | None
    eta_text: str
    estimated: bool = False  # the due times are estimates: a year without holiday data (weekdays only)
    student_id: str
    text: str
    created_at: str
    timeline: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    # What a parent reads of an emergency (SHARED_NAMES.md); see relay/core/views.py.
    school_phone: str | None = None
    told: list[dict[str, str]] = []
    acknowledged: dict[str, str] | None = None
    on_site: dict[str, str] | None = None
    outcome: dict[str, str] | None = None
    closing_message: str | None = None
    after_hours_text: str | None = None  # out of school hours, a routine request: when the school opens


class FollowUpBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = Field(json_schema_extra={"minLength": 1})


_NEW_REQUEST_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": NewRequest.model_json_schema()}},
    }
}


@router.post("/requests", status_code=201, response_model=RequestView, openapi_extra=_NEW_REQUEST_SCHEMA)
async def create_request(request: Request, response: Response, guardian: CurrentGuardian, runtime: RuntimeDep) -> Any:
    """Submit a request for one's own child. Send an `Idempotency-Key`: a retry returns the same request."""
    settings = runtime.settings
    key = _idempotency_key(request)
    body = parse(NewRequest, await read_json(request, settings.max_body_bytes))
    text = _parent_text(body.text, settings.max_text_chars)
    school = guardian.school
    student = school.student(body.student_id)
    # Someone else's child and an unknown id look the same from outside: neither reveals who studies here.
    if student is None or body.student_id not in school.children_of(guardian.id):
        raise ApiError(404, "unknown_student", "未找到该学生 (no such student among your children)")
    hint = clean_text(body.category_hint) if body.category_hint else None
    submission = Submission(guardian.id, student.id, text, hint or None, key, urgent=body.urgent)
    classification = triage(submission)
    in_flight: shedding.InFlight = request.app.state.intake_in_flight
    emergency = classification.urgency is Urgency.P0
    if not emergency and in_flight.saturated():
        raise shedding.shed()  # before any round trip: the emergencies behind this one go first
    address = ratelimit.client_address(request.client.host if request.client else None)
    limits = Limits(
        soft=(Limit(settings.rate_limit_guardian, ("guardian", school.id, guardian.id)),
              Limit(settings.rate_limit_ip, ("ip", "requests", address))),
        hard=(Limit(settings.rate_limit_urgent, ("urgent", school.id, guardian.id)),) if body.urgent else (),
    )
    try:
        async with nullcontext() if emergency else in_flight.routine_turn():
            arguments = (runtime, school, guardian.version, student, submission, classification, limits)
            if settings.intake_min_replicas:
                # WAIT can hold this answer for up to its timeout: off the event loop, so other requests go on.
                done = await run_in_threadpool(submit, *arguments)
            else:
                done = submit(*arguments)
    except IdempotencyMismatch as exc:
        raise ApiError(422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一内容 (key reused with a different body)") from exc
    if done.outcome is Outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
        return parent_view(runtime, school, done.record)
    if done.outcome is Outcome.joined:
        # Stored as a follow-up on the open emergency it belongs to (201: the message is kept), not a new page.
        response.headers["Relay-Joined-Request"] = done.record.id
        return parent_view(runtime, school, done.record)
    return parent_view(runtime, school, done.record, entries_known=first_timeline(done.record, []))


@router.get("/requests", tags=["requests"])
async def my_requests(guardian: CurrentGuardian, runtime: RuntimeDep) -> dict[str, Any]:
    """A guardian's own requests, newest first."""
    ids = store.guardian_request_ids(runtime.redis, guardian.school.id, guardian.id)
    records = [store.load(runtime.redis, guardian.school.id, i) for i in ids]
    return {"requests": [parent_view(runtime, guardian.school, r, timeline=False) for r in records if r]}


@router.get("/requests/{request_id}")
async def get_request(request_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The request with its timeline: a parent sees only their own, staff only their school's."""
    header = request.headers.get("authorization", "")
    token = header.partition(" ")[2].strip()
    kind = None
    try:
        kind = tokens.read_caller(token, runtime.settings.signing_keys()).kind if token else None
    except tokens.TokenError:
        kind = None
    if kind == "staff":
        staff = current_staff(request, runtime)
        record = store.load(runtime.redis, staff.school.id, request_id) if _plausible(request_id) else None
        if record is None:
            raise ApiError(404, "not_found", "未找到该请求 (no such request)")
        if record.category == "medical":
            audit.record(runtime.redis, staff.school.id, staff.id, "view", record.id)
        return staff_view(runtime, staff.school, record)
    from relay.api.deps import current_guardian

    guardian = current_guardian(request, runtime)
    record = store.load(runtime.redis, guardian.school.id, request_id) if _plausible(request_id) else None
    if record is None or record.guardian_id != guardian.id:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    return parent_view(runtime, guardian.school, record)


@router.post("/requests/{request_id}/urgent", responses=documented(409))
async def mark_urgent(request_id: str, response: Response, guardian: CurrentGuardian, runtime: RuntimeDep) -> Any:
    """The parent says it is urgent: raised to P0 at once, with the pages a P0 of its category gets and the
    owner paged. Never lowered by the parent; a repeat does nothing. Rate-limited per guardian."""
    school = guardian.school
    record = store.load(runtime.redis, school.id, request_id) if _plausible(request_id) else None
    if record is None or record.guardian_id != guardian.id:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    if record.urgency != Urgency.P0.value and record.is_open:
        ratelimit.check(runtime, runtime.settings.rate_limit_urgent, "urgent", school.id, guardian.id)
    try:
        done = retriage.mark_urgent(runtime, school, request_id, guardian.id)
    except store.Conflict as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    if done is None:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    if not done[1]:
        response.headers["Relay-Unchanged"] = "true"
    return parent_view(runtime, school, done[0])


@router.post("/requests/{request_id}/follow-up", responses=documented(409), openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": FollowUpBody.model_json_schema()}}}})
async def follow_up(request_id: str, request: Request, guardian: CurrentGuardian, runtime: RuntimeDep) -> Any:
    """The parent answers in the same thread: the text joins the request's timeline and the owner is told.
    Send an `Idempotency-Key`: a retry is answered without a second entry."""
    settings = runtime.settings
    key = _idempotency_key(request)
    school = guardian.school
    if not _plausible(request_id):
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    body = parse(FollowUpBody, await read_json(request, settings.max_body_bytes))
    text = _parent_text(body.text, settings.max_text_chars)
    ratelimit.check(runtime, settings.rate_limit_guardian, "guardian", school.id, guardian.id)
    try:
        record = followups.add(runtime, school, request_id, guardian.id, text, key)
    except followups.KeyReused as exc:
        raise ApiError(422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一内容 (key reused with a different body)") from exc
    except store.Conflict as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    if record is None:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    return parent_view(runtime, school, record)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters")
    return key


def _parent_text(raw: str, max_chars: int) -> str:
    """What a parent wrote, cleaned; empty or too long is a 422 that says which."""
    text = clean_text(raw)
    if not text:
        raise ApiError(422, "empty_text", "请填写内容 (text is empty)")
    if len(text) > max_chars:
        raise ApiError(422, "text_too_long", f"内容过长，请控制在 {max_chars} 字以内 (text is too long)")
    return text


def _plausible(request_id: str) -> bool:
    return bool(re.fullmatch(r"r[0-9a-f]{8,40}", request_id))
