"""The staff triage queue, a request's page with its actions, and the workload view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from relay.api.bodies import clean_text
from relay.api.deps import RuntimeDep
from relay.base import clock as relay_clock
from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord, Status
from relay.core import actions, audit, canned, followups
from relay.core.closing import OUTCOMES
from relay.core.permissions import can_act
from relay.pages.i18n import script_words, words
from relay.pages.sessions import SignedIn, StaffSession, checked_form
from relay.pages.views import is_overdue, queue_item, staff_name, timeline_lines, waits_for_ack
from relay.pages.web import lang_of, render
from routing.directory import Role
from routing.labels import Urgency

router = APIRouter(include_in_schema=False)

SCOPES = ("school", "mine", "classes")
URGENCIES = tuple(Urgency)
STATUSES = tuple(s.value for s in Status if s is not Status.resolved)
MAX_TEXT = 2000

Scope = Annotated[str, Query(max_length=16)]
Choice = Annotated[str, Query(max_length=16)]


def my_classes(session: StaffSession) -> set[str]:
    return {c.id for c in session.school.classes if session.id in (c.academic_affairs, c.homeroom)}


def filtered(records: list[RequestRecord], session: StaffSession, scope: str, urgency: str,
             status: str) -> list[RequestRecord]:
    if scope == "mine":
        records = [r for r in records if r.owner == session.id]
    elif scope == "classes":
        classes = my_classes(session)
        records = [r for r in records if r.class_id in classes]
    if urgency in URGENCIES:
        records = [r for r in records if r.urgency == urgency]
    if status in STATUSES:
        records = [r for r in records if r.status.value == status]
    return records


def _queue_items(request: Request, runtime: Runtime, session: StaffSession, scope: str, urgency: str,
                 status: str) -> tuple[list[dict[str, Any]], int]:
    """The rows the filters keep, and how many emergencies of the whole school nobody has acknowledged
    (the tab title counts those whatever the filters: an emergency is everyone's business)."""
    t = words(lang_of(request))
    records = store.open_queue(runtime.redis, session.school.id)
    waiting = sum(1 for r in records if waits_for_ack(r))
    return [queue_item(session.school, r, t) for r in filtered(records, session, scope, urgency, status)], waiting


def _acked_words(runtime: Runtime, session: StaffSession, request_id: str, t: dict[str, str]) -> str:
    """The queue's answer to an acknowledgement from a row: which request, and whose it is now."""
    record = _load(runtime, session, request_id) if request_id else None
    if record is None or not record.acknowledged_by:
        return ""
    row = queue_item(session.school, record, t)
    what = f"{row['class_name']} {row['student_name']} {row['category_words']}"
    if record.acknowledged_by != session.id:  # someone was quicker: say who has it, not that it was ours
        return t["acked_by_other"].format(who=staff_name(session.school, record.acknowledged_by), what=what)
    who = t["you_own_it"] if record.owner == session.id else \
        t["owner_stays"].format(owner=staff_name(session.school, record.owner))
    return t["done_row_ack"].format(what=what, who=who)


@router.get("/staff")
async def queue_page(request: Request, session: SignedIn, runtime: RuntimeDep, scope: Scope = "school",
                     urgency: Choice = "", status: Choice = "", acked: Annotated[str, Query(max_length=48)] = ""
                     ) -> HTMLResponse:
    scope = scope if scope in SCOPES else "school"
    items, waiting = _queue_items(request, runtime, session, scope, urgency, status)
    return render(request, "staff_queue.html", session=session, items=items, scope=scope, urgency=urgency,
                  status=status, scopes=SCOPES, urgencies=URGENCIES, statuses=STATUSES, waiting=waiting,
                  done=_acked_words(runtime, session, acked, words(lang_of(request))),
                  back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                  script_words=script_words(lang_of(request)), feed="/staff/queue.json")


@router.get("/staff/queue.json")
async def queue_json(request: Request, session: SignedIn, runtime: RuntimeDep, scope: Scope = "school",
                     urgency: Choice = "", status: Choice = "") -> JSONResponse:
    items, waiting = _queue_items(request, runtime, session, scope, urgency, status)
    return JSONResponse({"items": items, "emergencies_waiting": waiting}, headers={"Cache-Control": "no-store"})


def done_words(action: str, record: RequestRecord, session: StaffSession, t: dict[str, str]) -> str:
    """What the action just did, in a sentence ("已转交给李老师。"), for the page it comes back to."""
    owner = staff_name(session.school, record.owner)
    if action == "ack":
        return t["done_ack_mine"] if record.owner == session.id else t["done_ack_other"].format(owner=owner)
    if action in ("claim", "reply", "note", "resolve", "merge", "reassign"):
        return t["done_" + action].format(owner=owner)
    return ""


def _request_page(request: Request, runtime: Runtime, session: StaffSession, record: RequestRecord,
                  http_status: int = 200, error: str = "", done: str = "") -> HTMLResponse:
    school = session.school
    lang = lang_of(request)
    t = words(lang)
    student = school.student(record.student_id)
    guardian = school.guardian(record.guardian_id)
    colleagues = [s for s in school.staff if s.id != record.owner]
    colleagues.sort(key=lambda s: (Role.academic_affairs not in s.roles, s.name))
    return render(
        request, "staff_request.html", http_status, session=session, record=record,
        item=queue_item(school, record, t),
        timeline=timeline_lines(school, store.load_timeline(runtime.redis, school.id, record.id), t),
        student=student, guardian=guardian, owner=staff_name(school, record.owner),
        colleagues=[(s.id, staff_name(school, s.id)) for s in colleagues],
        canned=[(r.id, r.text(lang)) for r in canned.for_school(runtime.redis, school.id, record.category)],
        merge_into=followups.candidates(runtime, school, record) if record.is_open else [],
        outcomes=OUTCOMES if record.urgency in (Urgency.P0, Urgency.P1) else {},
        error=error, done=done_words(done, record, session, t) if done else "", script_words=script_words(lang),
        may_act=can_act(session.member, school, record),
    )


def _load(runtime: Runtime, session: StaffSession, request_id: str) -> RequestRecord | None:
    if not request_id.startswith("r") or len(request_id) > 48:
        return None
    return store.load(runtime.redis, session.school.id, request_id)


@router.get("/staff/requests/{request_id}")
async def request_page(request_id: str, request: Request, session: SignedIn, runtime: RuntimeDep,
                       done: Choice = "") -> HTMLResponse:
    record = _load(runtime, session, request_id)
    if record is None:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/staff")
    if record.category == "medical":
        audit.record(runtime.redis, session.school.id, session.id, "view", record.id)
    return _request_page(request, runtime, session, record, done=done if done else "")


def _text(form: FormData, field: str, required: bool = True) -> str:
    value = clean_text(str(form.get(field) or ""))[:MAX_TEXT]
    if required and not value:
        raise Conflict("empty_text", "请填写内容 (text is empty)")
    return value


# Each action: (form, runtime, session, request id) -> the changed request, or None if it is gone.
Action = Callable[[FormData, Runtime, StaffSession, str], RequestRecord | None]

ACTIONS: dict[str, Action] = {
    "ack": lambda f, rt, s, rid: actions.acknowledge(rt, s.school, rid, s.id, via="page"),
    "claim": lambda f, rt, s, rid: actions.claim(rt, s.school, rid, s.id),
    "reply": lambda f, rt, s, rid: actions.reply(rt, s.school, rid, s.id, _text(f, "text")),
    "note": lambda f, rt, s, rid: actions.note(rt, s.school, rid, s.id, _text(f, "text")),
    "reassign": lambda f, rt, s, rid: actions.reassign(rt, s.school, rid, s.id, str(f.get("to") or ""),
                                                       _text(f, "reason", required=False)[:500]),
    "resolve": lambda f, rt, s, rid: actions.resolve(rt, s.school, rid, s.id, _text(f, "note", required=False) or None,
                                                     message=_text(f, "message", required=False) or None,
                                                     outcome=str(f.get("outcome") or "") or None),
    "merge": lambda f, rt, s, rid: followups.merge(rt, s.school, rid, str(f.get("into") or ""), s.id),
}


@router.post("/staff/requests/{request_id}/{action}")
async def act(request_id: str, action: str, request: Request, session: SignedIn, runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    run = ACTIONS.get(action)
    record = _load(runtime, session, request_id)
    if run is None or record is None:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/staff")
    if not can_act(session.member, session.school, record):
        return render(request, "message.html", 403, title_key="failed", message_key="not_yours",
                      link=f"/staff/requests/{record.id}")
    try:
        changed = run(form, runtime, session, request_id)
    except Conflict as exc:
        current = _load(runtime, session, request_id) or record
        return _request_page(request, runtime, session, current, 409, error=exc.message)
    if changed is None:  # the request went away meanwhile (purged): nothing was done, say so
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/staff")
    back = urlsplit(str(form.get("back") or ""))
    if action == "ack" and back.path == "/staff" and not back.netloc and not back.scheme:
        # Acknowledged from the queue's row: back to the same queue (same filters), which says what was acknowledged.
        query = [(k, v) for k, v in parse_qsl(back.query) if k in ("scope", "urgency", "status", "lang")]
        return RedirectResponse("/staff?" + urlencode([*query, ("acked", changed.id)]), status_code=303)
    # A merge leaves this request resolved: the one worth looking at next is the older request.
    target = changed.id if action == "merge" else request_id
    return RedirectResponse(f"/staff/requests/{target}?done={action}", status_code=303)


@router.get("/staff/workload")
async def workload_page(request: Request, session: SignedIn, runtime: RuntimeDep) -> HTMLResponse:
    """Open and overdue requests per academic-affairs teacher."""
    records = store.open_queue(runtime.redis, session.school.id)
    rows: list[dict[str, Any]] = []
    for member in session.school.with_role(Role.academic_affairs):
        theirs = [r for r in records if r.owner == member.id]
        rows.append({
            "id": member.id,
            "name": staff_name(session.school, member.id),
            "open": len(theirs),
            "overdue": sum(1 for r in theirs if is_overdue(r)),
            "p0": sum(1 for r in theirs if r.urgency == Urgency.P0),
            "away": member.is_away(relay_clock.now_in(session.school.zone).date()),
        })
    rows.sort(key=lambda row: (-row["overdue"], -row["open"], row["name"]))
    return render(request, "staff_workload.html", session=session, rows=rows)
