"""/v1/admin: the school administration API for a district's own tools.

A staff bearer token (`relay token staff ID`) of someone with the role admin or principal;
everything acts on the token's own school, which no URL can name, so an administrator of one
school can neither see nor change another. Another staff member gets 403 `forbidden`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from relay.api.body_limit import SETTINGS_BYTES, UPLOAD_BYTES
from relay.api.deps import RuntimeDep, StaffCaller, StaffOfSchool
from relay.api.errors import ApiError, ErrorBody, described
from relay.base.directory import ConfigError, Published, export_yaml, versions
from relay.school import admin, roster_files
from routing.validation import Problem


class AdminRefusal(ErrorBody):
    """A refusal; a directory or a roster that fails its check also lists every problem found."""

    problems: list[dict[str, Any]] | None = Field(
        default=None, description='a directory: [{"where", "message"}]; a roster: [{"sheet", "row", "column", "message"}]')


# What these operations refuse with, beyond every /v1 operation's statuses (relay/api/errors.py).
ADMIN_ERRORS = {
    403: "`forbidden`: the token is not an administrator's or the principal's",
    404: "`unknown_staff`, `unknown_class`, `no_such_leave`, `no_directory`, `not_found`: no such person, class, "
         "leave or template sheet in the token's school (another school's look the same as none)",
    409: "`overlapping_leave`: the person already has leave on some of those days",
    422: "`invalid_directory` or `invalid_roster` with `problems` (nothing was changed); `invalid_body`, "
         "`invalid_request`, `no_file`, `bad_dates`, `bad_backup`, `not_on_leave`, "
         "`not_academic_affairs`",
}
router = APIRouter(prefix="/v1/admin", tags=["administration"], responses=described(ADMIN_ERRORS, AdminRefusal))

_STATUS = {"unknown_staff": 404, "unknown_class": 404, "no_such_leave": 404, "no_directory": 404,
           "import_expired": 410, "overlapping_leave": 409}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def administrator(staff: StaffOfSchool) -> StaffCaller:
    if not admin.may_administer(staff.member):
        raise ApiError(403, "forbidden", "需要本校管理员或校长权限 (administrators and principals only)")
    return staff


Administrator = Annotated[StaffCaller, Depends(administrator)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewLeave(_Body):
    staff_id: str = Field(min_length=1, max_length=64)
    start: dt.date
    end: dt.date
    backup: str = Field(min_length=1, max_length=64)
    move_open: bool = False  # also move their open requests to the backup now (if the leave has begun)


class CancelLeave(_Body):
    staff_id: str = Field(min_length=1, max_length=64)
    start: dt.date


class MoveOpen(_Body):
    to: str | None = Field(default=None, min_length=1, max_length=64)  # default: the backup of their leave today
    reason: str = Field(default="", max_length=500)


class ClassTeacher(_Body):
    to: str = Field(min_length=1, max_length=64)
    move_open: bool = False


def problems_json(problems: list[Problem]) -> list[dict[str, str]]:
    return [{"where": p.where.removeprefix("schools[0]."), "message": p.message} for p in problems]


def _invalid(exc: ConfigError) -> JSONResponse:
    message = f"{len(exc.problems)} 个问题，未做修改 (nothing was changed)"
    return JSONResponse({"error": {"code": "invalid_directory", "message": message},
                         "problems": problems_json(exc.problems)}, status_code=422)


def _refused(exc: admin.AdminError) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 422), exc.code, exc.message)


def _result(done: Published, **extra: Any) -> dict[str, Any]:
    return {"version": done.version, "previous_version": done.previous, "changed": done.changed, **extra}


def _run(change: Any) -> Any:
    """ConfigError → 422 with every problem; AdminError → its status."""
    try:
        return change()
    except ConfigError as exc:
        return _invalid(exc)
    except admin.AdminError as exc:
        raise _refused(exc) from exc


@router.get("/directory")
def directory(caller: Administrator, runtime: RuntimeDep) -> Any:
    """The school's current version, as stored."""
    version, school = _run(lambda: admin.current(runtime, caller.school.id))
    return {"school_id": school.id, "version": version, "school": school.model_dump(mode="json", exclude_none=True)}


@router.get("/directory.yaml", response_class=Response,
            responses={200: {"content": {"application/yaml": {"schema": {"description": "the school configuration YAML"}}}}})
def directory_yaml(caller: Administrator, runtime: RuntimeDep) -> Response:
    """The current version as a configuration file (what `relay config export` prints)."""
    _, school = _run(lambda: admin.current(runtime, caller.school.id))
    return Response(export_yaml([school]), media_type="application/yaml; charset=utf-8")


@router.put("/directory")
async def replace_directory(request: Request, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Publish a whole school (one entry of a configuration's `schools`, as JSON) as the new version."""
    from relay.api.bodies import read_json

    document = await read_json(request, UPLOAD_BYTES)
    if not isinstance(document, dict) or document.get("id", caller.school.id) != caller.school.id:
        raise ApiError(422, "invalid_body", "请求体应为本校的目录对象 (the body must be this school's entry)")
    document["id"] = caller.school.id

    return await run_in_threadpool(
        _run, lambda: _result(admin.replace_school(runtime, caller.school.id, document, caller.id)))


@router.get("/versions")
def version_list(caller: Administrator, runtime: RuntimeDep) -> dict[str, Any]:
    return {"versions": versions(runtime.redis, caller.school.id)}


@router.post("/versions/{version}/restore")
def restore(version: int, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Publish what `version` held as a new version."""
    return _run(lambda: _result(admin.restore_version(runtime, caller.school.id, version, caller.id)))


@router.get("/log")
def change_log(caller: Administrator, runtime: RuntimeDep) -> dict[str, Any]:
    return {"changes": admin.admin_log(runtime, caller.school.id)}


async def uploaded_files(request: Request) -> list[tuple[str, str, bytes]]:
    """Every file of a multipart form (the whole body is bounded as it arrives: relay/api/body_limit.py)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "请以 multipart/form-data 上传文件 (upload as multipart/form-data)")
    form = await request.form(max_part_size=UPLOAD_BYTES)
    files = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read(UPLOAD_BYTES + 1)
            if len(content) > UPLOAD_BYTES:
                raise ApiError(413, "body_too_large", f"文件过大 (over {UPLOAD_BYTES} bytes)")
            files.append((name, value.filename or name, content))
    return files


@router.post("/roster/check")
async def check_roster(request: Request, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Upload `file` (.xlsx) or `students` / `staff` / `classes` (CSV). 200 with an `import_id` to apply,
    or 422 with every problem at its sheet, row and column."""
    files = await uploaded_files(request)
    if not files:
        raise ApiError(422, "no_file", "没有收到文件 (no file in the form)")
    # Reading a workbook takes a few hundred milliseconds: off the event loop.
    checked, import_id, version = await run_in_threadpool(
        _run, lambda: admin.stage_import(runtime, caller.school.id, files, caller.id))
    body = {"valid": import_id is not None, "checked_against": version, "import_id": import_id,
            "summary": checked.summary, "problems": [p.as_dict() for p in checked.problems]}
    if import_id is None:
        body["error"] = {"code": "invalid_roster", "message": f"{len(checked.problems)} 个问题，未做修改 (nothing was changed)"}
        return JSONResponse(body, status_code=422)
    return body


@router.post("/roster/{import_id}/apply", responses=described({
    410: "`import_expired`: the checked import is gone (applied, or older than an hour): check the file again"}))
def apply_roster(import_id: str, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Publish a checked import as the new version (settings, leave and absence are kept)."""
    return _run(lambda: _result(admin.apply_import(runtime, caller.school.id, import_id, caller.id)))


_XLSX_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}}}}}


@router.get("/roster.xlsx", response_class=Response, responses=_XLSX_RESPONSE)
def roster_xlsx(caller: Administrator, runtime: RuntimeDep) -> Response:
    _, school = _run(lambda: admin.current(runtime, caller.school.id))
    return _download(roster_files.workbook(school), XLSX, f"{school.id}-roster.xlsx")


@router.get("/roster/template.xlsx", response_class=Response, responses=_XLSX_RESPONSE)
def template_xlsx(_: Administrator) -> Response:
    return _download(roster_files.workbook(None), XLSX, "roster-template.xlsx")


@router.get("/roster/template/{sheet}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def template_csv(sheet: str, _: Administrator) -> Response:
    if sheet not in roster_files.SHEETS:
        raise ApiError(404, "not_found", "sheet is one of students, staff, classes")
    return _download(roster_files.csv_file(sheet, None), "text/csv; charset=utf-8", f"{sheet}.csv")


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.post("/leave")
def add_leave(body: NewLeave, caller: Administrator, runtime: RuntimeDep) -> Any:
    """From `start` to `end` the person's new requests go to `backup`; `move_open` moves their open ones now."""
    def change() -> Any:
        done = admin.add_leave(runtime, caller.school.id, body.staff_id, body.start, body.end, body.backup, caller.id)
        today = admin.today_in(done.school)
        moved = []
        if body.move_open and body.start <= today <= body.end:
            moved = admin.move_for_leave(runtime, done.school, body.staff_id, caller.id, today)
        return _result(done, moved=moved)

    return _run(change)


@router.post("/leave/cancel")
def cancel_leave(body: CancelLeave, caller: Administrator, runtime: RuntimeDep) -> Any:
    return _run(lambda: _result(admin.cancel_leave(runtime, caller.school.id, body.staff_id, body.start, caller.id)))


@router.post("/staff/{staff_id}/move-open")
def move_open(staff_id: str, body: MoveOpen, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Move someone's open requests: to `to`, or by default to the backup of their leave today."""
    def change() -> Any:
        _, school = admin.current(runtime, caller.school.id)
        if body.to is None:
            return {"moved": admin.move_for_leave(runtime, school, staff_id, caller.id,
                                                  admin.today_in(school))}
        reason = body.reason or "管理员转交 (moved by an administrator)"
        return {"moved": admin.move_open(runtime, school, staff_id, body.to, caller.id, reason)}

    return _run(change)


@router.post("/classes/{class_id}/academic-affairs")
def class_teacher(class_id: str, body: ClassTeacher, caller: Administrator, runtime: RuntimeDep) -> Any:
    def change() -> Any:
        done, moved = admin.reassign_class(runtime, caller.school.id, class_id, body.to, caller.id, body.move_open)
        return _result(done, moved=moved)

    return _run(change)


@router.get("/settings")
def settings(caller: Administrator, runtime: RuntimeDep) -> Any:
    """Hours, terms, closures, SLA and the other school-wide settings."""
    version, school = _run(lambda: admin.current(runtime, caller.school.id))
    return {"version": version, "settings": admin.settings_of(school)}


@router.put("/settings")
async def change_settings(request: Request, caller: Administrator, runtime: RuntimeDep) -> Any:
    """Replace the settings given (each key whole), checked like `relay config check` before publishing."""
    from relay.api.bodies import read_json

    given = await read_json(request, SETTINGS_BYTES)
    if not isinstance(given, dict):
        raise ApiError(422, "invalid_body", "请求体必须是 JSON 对象 (the body must be a JSON object)")
    return await run_in_threadpool(
        _run, lambda: _result(admin.update_settings(runtime, caller.school.id, given, caller.id)))
