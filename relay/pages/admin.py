"""/admin: the school administration pages (same sign-in as /staff; administrators and principals only).

Each section is one page: a GET shows it, a POST changes the directory through relay/school/admin.py and
comes back to the page with what happened, or shows the page again with every problem found.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from relay.api.admin import XLSX, problems_json
from relay.api.body_limit import SETTINGS_BYTES, UPLOAD_BYTES
from relay.api.deps import RuntimeDep
from relay.base import store
from relay.base.directory import ConfigError, versions
from relay.base.runtime import Runtime
from relay.pages.admin_words import admin_words
from relay.pages.sessions import SignedIn, StaffSession, checked_form
from relay.pages.views import class_name, staff_name
from relay.pages.web import lang_of, render, templates
from relay.school import admin, roster_files, settings_form
from routing.directory import Role, School

router = APIRouter(include_in_schema=False)


def epoch_clock(value: float | None, zone: str = "Asia/Shanghai") -> str:
    """Epoch seconds → `2026-05-11 09:05` in the school's time."""
    if not value:
        return ""
    return dt.datetime.fromtimestamp(float(value), ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


templates.filters["epoch_clock"] = epoch_clock

Done = Annotated[str, Query(max_length=32)]


class NotAdministrator(Exception):
    """Signed in, but neither an administrator nor the principal: 403 (they know /admin exists)."""


def administrator(session: SignedIn) -> StaffSession:
    if not admin.may_administer(session.member):
        raise NotAdministrator()
    return session


AdminSession = Annotated[StaffSession, Depends(administrator)]


def _open_requests(runtime: Runtime, school: School) -> list[store.RequestRecord]:
    return store.open_queue(runtime.redis, school.id, limit=100_000)


def who_words(school: School, by: str | None, words: dict[str, str]) -> str:
    """Who published a version: a person's name, or "the configuration file" (never RELAY_CONFIG, never an id)."""
    if not by:
        return ""
    if by == "RELAY_CONFIG":
        return words["from_file"]
    return staff_name(school, by)


def note_words(school: School, note: str | None, words: dict[str, str]) -> str:
    """A version's note in words: "leave:t-li" → "请假：李老师", "class:g1c1" → "更换教务老师：一年级1班"."""
    if not note:
        return ""
    if note.startswith("file "):  # "file school.yaml": published from RELAY_CONFIG at start-up
        return words["note_file"]
    kind, _, subject = note.partition(":")
    if kind in ("leave", "leave-cancelled"):
        return f"{words['note_' + kind.replace('-', '_')]}：{staff_name(school, subject)}"
    if kind == "class":
        return f"{words['note_class']}：{class_name(school, subject)}"
    if kind == "restore":
        return f"{words['note_restored']} v{subject}"
    return words.get(f"note_{kind}", note)


def _overview(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    return {"version": version, "school": school, "versions": versions(runtime.redis, school.id),
            "changes": admin.admin_log(runtime, school.id, 20),
            "names": {s.id: staff_name(school, s.id) for s in school.staff},
            "class_names": {c.id: c.name for c in school.classes}}


def _roster(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    return {"version": version, "school": school, "sheet_kinds": list(roster_files.SHEETS)}


def _leave(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    today = admin.today_in(school)
    open_by_owner = Counter(r.owner for r in _open_requests(runtime, school))
    periods = [(member, period) for member in school.staff for period in member.leave if period.end >= today]
    first = (school.with_role(Role.academic_affairs) or school.staff)[:1]  # the form opens on a teacher
    return {"version": version, "school": school, "today": today, "periods": periods, "open_by_owner": open_by_owner,
            "names": {s.id: staff_name(school, s.id) for s in school.staff},
            "default_backup": {s.id: default_backup(school, s.id) for s in school.staff},
            "chosen": first[0].id if first else ""}


def default_backup(school: School, staff_id: str) -> str:
    """The stand-in the leave form offers: the person's configured backup, never the person themself."""
    member = school.staff_member(staff_id)
    backup = member.backup if member else None
    return backup if backup and backup != staff_id and school.staff_member(backup) else ""


def _classes(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    open_by_class = Counter(r.class_id for r in _open_requests(runtime, school))
    return {"version": version, "school": school, "open_by_class": open_by_class,
            "teachers": school.with_role(Role.academic_affairs),
            "names": {s.id: staff_name(school, s.id) for s in school.staff}}


def _settings(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    return {"version": version, "school": school, "settings_text": admin.settings_yaml(school),
            "hours_rows": settings_form.hours_rows(school), "sla_rows": settings_form.sla_rows(school),
            "today": admin.today_in(school)}


def _calendar(runtime: Runtime, session: StaffSession) -> dict[str, Any]:
    version, school = admin.current(runtime, session.school.id)
    today = admin.today_in(school)
    return {"version": version, "school": school, "today": today, "next_year": today.year + 1}


SECTIONS: dict[str, tuple[str, Callable[[Runtime, StaffSession], dict[str, Any]]]] = {
    "overview": ("admin_home.html", _overview),
    "roster": ("admin_roster.html", _roster),
    "leave": ("admin_leave.html", _leave),
    "classes": ("admin_classes.html", _classes),
    "settings": ("admin_settings.html", _settings),
    "calendar": ("admin_calendar.html", _calendar),
}


def _show(request: Request, runtime: Runtime, session: StaffSession, section: str, http_status: int = 200,
          **extra: Any) -> HTMLResponse:
    template, context = SECTIONS[section]
    words = admin_words(lang_of(request))
    shown = context(runtime, session) | extra
    return render(request, template, http_status, session=session, a=words, nav="admin", section=section,
                  who=lambda by: who_words(shown["school"], by, words),
                  note=lambda text: note_words(shown["school"], text, words),
                  done=request.query_params.get("done", "") if http_status == 200 else "",
                  calendar_missing=admin.missing_calendar_years(shown["school"]), **shown)


def _refused(request: Request, runtime: Runtime, session: StaffSession, section: str, exc: Exception,
             **extra: Any) -> HTMLResponse:
    if isinstance(exc, ConfigError):
        return _show(request, runtime, session, section, 422, problems=problems_json(exc.problems), **extra)
    message = exc.message if isinstance(exc, admin.AdminError) else str(exc)
    return _show(request, runtime, session, section, 409, error=message, **extra)


def _back(section: str, done: str, **more: Any) -> RedirectResponse:
    path = "/admin" if section == "overview" else f"/admin/{section}"
    query = "&".join([f"done={done}", *(f"{k}={v}" for k, v in more.items())])
    return RedirectResponse(f"{path}?{query}", status_code=303)


def _date(form: FormData, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(form.get(field) or ""))
    except ValueError as exc:
        raise admin.AdminError("bad_dates", "请填写日期 (a date is missing)") from exc


# Overview and versions --------------------------------------------------------------------------


@router.get("/admin")
def overview(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "overview")


@router.post("/admin/versions/{version}/restore")
async def restore(version: int, request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    await checked_form(request, session)
    try:
        done = await run_in_threadpool(admin.restore_version, runtime, session.school.id, version, session.id)
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "overview", exc)
    return _back("overview", "restore", version=done.version)


# Roster import ----------------------------------------------------------------------------------


@router.get("/admin/roster")
def roster_page(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "roster")


@router.post("/admin/roster/check")
async def check_roster(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    files = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile) and value.filename:
            files.append((name, value.filename, await value.read(UPLOAD_BYTES + 1)))
    if not files:
        return _show(request, runtime, session, "roster", 422, error="请选择要上传的文件 (choose a file)")
    checked, import_id, version = await run_in_threadpool(admin.stage_import, runtime, session.school.id, files,
                                                          session.id)
    return _show(request, runtime, session, "roster", 200 if import_id else 422, checked=checked, import_id=import_id,
                 checked_against=version)


@router.post("/admin/roster/apply")
async def apply_roster(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    try:
        done = await run_in_threadpool(admin.apply_import, runtime, session.school.id,
                                       str(form.get("import_id") or ""), session.id)
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "roster", exc)
    return _back("overview", "import", version=done.version)


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.get("/admin/roster/template.xlsx")
def template_xlsx(_: AdminSession) -> Response:
    return _download(roster_files.workbook(None), XLSX, "roster-template.xlsx")


@router.get("/admin/roster/template/{sheet}.csv")
def template_csv(sheet: str, _: AdminSession) -> Response:
    if sheet not in roster_files.SHEETS:
        return Response("no such sheet", status_code=404)
    return _download(roster_files.csv_file(sheet, None), "text/csv; charset=utf-8", f"{sheet}.csv")


@router.get("/admin/roster/current.xlsx")
def current_xlsx(session: AdminSession, runtime: RuntimeDep) -> Response:
    _, school = admin.current(runtime, session.school.id)
    return _download(roster_files.workbook(school), XLSX, f"{school.id}-roster.xlsx")


# Leave ------------------------------------------------------------------------------------------


@router.get("/admin/leave")
def leave_page(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "leave")


@router.post("/admin/leave")
async def add_leave(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)

    def change() -> int:
        staff_id = str(form.get("staff_id") or "")
        start, end = _date(form, "start"), _date(form, "end")
        done = admin.add_leave(runtime, session.school.id, staff_id, start, end, str(form.get("backup") or ""),
                               session.id)
        today = admin.today_in(done.school)
        if form.get("move_open") and start <= today <= end:
            return len(admin.move_for_leave(runtime, done.school, staff_id, session.id, today))
        return 0

    try:
        moved = await run_in_threadpool(change)
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "leave", exc)
    return _back("leave", "leave", moved=moved)


@router.post("/admin/leave/cancel")
async def cancel_leave(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    try:
        await run_in_threadpool(lambda: admin.cancel_leave(runtime, session.school.id, str(form.get("staff_id") or ""),
                                                           _date(form, "start"), session.id))
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "leave", exc)
    return _back("leave", "cancelled")


@router.post("/admin/leave/move")
async def move_for_leave(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)

    def move() -> int:
        _, school = admin.current(runtime, session.school.id)
        today = admin.today_in(school)
        return len(admin.move_for_leave(runtime, school, str(form.get("staff_id") or ""), session.id, today))

    try:
        moved = await run_in_threadpool(move)
    except admin.AdminError as exc:
        return _refused(request, runtime, session, "leave", exc)
    return _back("leave", "moved", moved=moved)


# Classes ----------------------------------------------------------------------------------------


@router.get("/admin/classes")
def classes_page(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "classes")


@router.post("/admin/classes/{class_id}")
async def class_teacher(class_id: str, request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    try:
        _, moved = await run_in_threadpool(admin.reassign_class, runtime, session.school.id, class_id,
                                           str(form.get("to") or ""), session.id, bool(form.get("move_open")))
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "classes", exc)
    return _back("classes", "class", moved=len(moved))


# Hours, closures and SLA ------------------------------------------------------------------------


@router.get("/admin/settings")
def settings_page(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "settings")


@router.post("/admin/settings")
async def change_settings(request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    text = str(form.get("settings") or "")[:SETTINGS_BYTES]
    try:
        done = await run_in_threadpool(
            lambda: admin.update_settings(runtime, session.school.id, admin.parse_settings(text), session.id))
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "settings", exc, settings_text=text)
    return _back("settings", "settings", version=done.version)


# The forms: hours, closures, the school's phone, SLA (each read whole, then the same validated path) ---

SettingsForm = Callable[[School, settings_form.Form], dict[str, Any]]
SETTINGS_FORMS: dict[str, SettingsForm] = {
    "hours": lambda school, form: {"hours": settings_form.read_hours(form)},
    "closures": lambda school, form: {"closures": settings_form.add_closure(school, form)},
    "closure-removed": lambda school, form: {"closures": settings_form.remove_closure(school, form)},
    "phone": lambda school, form: {"phone": settings_form.read_phone(form)},
    "sla": lambda school, form: {"sla": settings_form.read_sla(school, form)},
}


@router.post("/admin/settings/{part}")
async def change_settings_form(part: str, request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    read = SETTINGS_FORMS.get(part)
    if read is None:
        return _show(request, runtime, session, "settings", 404, error="没有这个设置项 (no such form)")
    fields = settings_form.Form([(k, v) for k, v in form.multi_items() if isinstance(v, str)])

    def change() -> Any:
        _, school = admin.current(runtime, session.school.id)
        return admin.update_settings(runtime, session.school.id, read(school, fields), session.id)

    try:
        done = await run_in_threadpool(change)
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "settings", exc, form_part=part)
    return _back("settings", part, version=done.version)


# Official holidays and make-up workdays ---------------------------------------------------------


@router.get("/admin/calendar")
def calendar_page(request: Request, session: AdminSession, runtime: RuntimeDep) -> HTMLResponse:
    return _show(request, runtime, session, "calendar")


@router.post("/admin/calendar/{kind}")
async def change_calendar(kind: str, request: Request, session: AdminSession, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    name = str(form.get("name") or "")[:40]

    def change() -> Any:
        if kind == "holidays":
            start = _date(form, "start")
            end = _date(form, "end") if form.get("end") else start
            return admin.add_holiday(runtime, session.school.id, name, start, end, session.id)
        if kind == "workdays":
            return admin.add_workday(runtime, session.school.id, name, _date(form, "date"), session.id)
        if kind == "remove":
            return admin.remove_calendar_day(runtime, session.school.id, str(form.get("kind") or ""),
                                             _date(form, "start"), session.id)
        raise admin.AdminError("bad_kind", "只能录入节假日或调休日 (holidays or workdays)")

    try:
        done = await run_in_threadpool(change)
    except (ConfigError, admin.AdminError) as exc:
        return _refused(request, runtime, session, "calendar", exc)
    return _back("calendar", "calendar", version=done.version)


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(NotAdministrator)
    async def _not_administrator(request: Request, _: NotAdministrator) -> Response:
        words = admin_words(lang_of(request))
        return render(request, "admin_denied.html", 403, a=words, code="forbidden")
