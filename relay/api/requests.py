"""Parents' requests: submit one, see one (with its timeline), list their own."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relay import store, tokens
from relay.api.deps import CurrentGuardian, RuntimeDep, current_staff
from relay.api.errors import ApiError
from relay.intake import IdempotencyMismatch, Submission, first_timeline, submit
from relay.views import parent_view, staff_view

router = APIRouter(prefix="/v1", tags=["requests"])

# Zero-width and bidi controls hide text from staff; other control characters break pages.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    student_id: str = Field(min_length=1, max_length=64)
    text: str
    category_hint: str | None = Field(default=None, max_length=32)


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
    student_id: str
    text: str
    created_at: str
    timeline: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    # Lone surrogates (JSON "\\ud800") cannot be stored or shown as UTF-8: dropped like control characters.
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return text.strip()


async def read_json(request: Request, max_bytes: int) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "请以 JSON 提交 (send Content-Type: application/json)")
    body = await request.body()
    if len(body) > max_bytes:
        raise ApiError(413, "body_too_large", f"内容过长 (the body is over {max_bytes} bytes)")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # also a too-deep nesting or a 5,000-digit number
        raise ApiError(400, "invalid_json", "无法解析 JSON (the body is not valid JSON)") from exc


def parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "请求体必须是 JSON 对象 (the body must be a JSON object)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        raise ApiError(422, code, f"{field}: {first['msg']}") from exc


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
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters")
    body = parse(NewRequest, await read_json(request, settings.max_body_bytes))
    text = clean_text(body.text)
    if not text:
        raise ApiError(422, "empty_text", "请填写内容 (text is empty)")
    if len(text) > settings.max_text_chars:
        raise ApiError(422, "text_too_long", f"内容过长，请控制在 {settings.max_text_chars} 字以内 (text is too long)")
    school = guardian.school
    student = school.student(body.student_id)
    # Someone else's child and an unknown id look the same from outside: neither reveals who studies here.
    if student is None or body.student_id not in school.children_of(guardian.id):
        raise ApiError(404, "unknown_student", "未找到该学生 (no such student among your children)")
    hint = clean_text(body.category_hint) if body.category_hint else None
    submission = Submission(guardian.id, student.id, text, hint or None, key)
    try:
        record, created = submit(runtime, school, guardian.version, student, submission)
    except IdempotencyMismatch as exc:
        raise ApiError(422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一内容 (key reused with a different body)") from exc
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
        return parent_view(runtime, school, record)
    return parent_view(runtime, school, record, entries_known=first_timeline(record, []))


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
        return staff_view(runtime, staff.school, record)
    from relay.api.deps import current_guardian

    guardian = current_guardian(request, runtime)
    record = store.load(runtime.redis, guardian.school.id, request_id) if _plausible(request_id) else None
    if record is None or record.guardian_id != guardian.id:
        raise ApiError(404, "not_found", "未找到该请求 (no such request)")
    return parent_view(runtime, guardian.school, record)


def _plausible(request_id: str) -> bool:
    return bool(re.fullmatch(r"r[0-9a-f]{8,40}", request_id))
