"""The nurse console: urgent health requests with the guardian's contact, and one-tap actions.

Made for a phone in a pocket: a list of cards, each with three big buttons —
acknowledge, arrived (acknowledge and a note "已到场"), handled (resolve).
The guardian's name and phone are on this staff-only page and nowhere in the logs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from relay.api.deps import RuntimeDep
from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord
from relay.core import actions
from relay.core.permissions import can_act
from relay.pages.i18n import script_words, words
from relay.pages.sessions import SignedIn, StaffSession, checked_form
from relay.pages.views import queue_item
from relay.pages.web import lang_of, render
from routing.directory import Role, School
from routing.labels import Category, Urgency

router = APIRouter(include_in_schema=False)

CONSOLE_ROLES = (Role.nurse, Role.safety_officer, Role.duty_leader, Role.principal, Role.admin)
ARRIVED_NOTE = "已到场"


def for_nurse(school: School, record: RequestRecord) -> bool:
    """P0 health requests, and any request a nurse owns or an escalation step already called a nurse to."""
    nurses = {s.id for s in school.with_role(Role.nurse)}
    if record.urgency == Urgency.P0 and record.category == Category.medical:
        return True
    if record.owner in nurses:
        return True
    taken = record.escalation[: record.escalation_step]
    return any(staff_id in nurses for step in taken for staff_id in step.notify)


def allowed(session: StaffSession) -> bool:
    return any(role in session.member.roles for role in CONSOLE_ROLES)


def _items(request: Request, runtime: Runtime, session: StaffSession) -> list[dict[str, Any]]:
    t = words(lang_of(request))
    school = session.school
    return [queue_item(school, r, t, contact=True) for r in store.open_queue(runtime.redis, school.id)
            if for_nurse(school, r)]


@router.get("/nurse")
async def nurse_console(request: Request, session: SignedIn, runtime: RuntimeDep, done: str = "") -> HTMLResponse:
    if not allowed(session):
        return render(request, "message.html", 403, title_key="nurse", message_key="nurse_only", link="/staff")
    return render(request, "nurse.html", session=session, items=_items(request, runtime, session),
                  script_words=script_words(lang_of(request)), feed="/nurse/queue.json", done=done[:16])


@router.get("/nurse/queue.json")
async def nurse_json(request: Request, session: SignedIn, runtime: RuntimeDep) -> JSONResponse:
    items = _items(request, runtime, session) if allowed(session) else []
    return JSONResponse({"items": items}, headers={"Cache-Control": "no-store"})


def _arrived(runtime: Runtime, session: StaffSession, request_id: str) -> RequestRecord | None:
    actions.acknowledge(runtime, session.school, request_id, session.id, via="page")
    return actions.note(runtime, session.school, request_id, session.id, ARRIVED_NOTE)


NURSE_ACTIONS = {
    "ack": lambda rt, s, rid: actions.acknowledge(rt, s.school, rid, s.id, via="page"),
    "arrived": _arrived,
    "handled": lambda rt, s, rid: actions.resolve(rt, s.school, rid, s.id, None),
}


@router.post("/nurse/requests/{request_id}/{action}")
async def nurse_act(request_id: str, action: str, request: Request, session: SignedIn,
                    runtime: RuntimeDep) -> Response:
    await checked_form(request, session)
    run = NURSE_ACTIONS.get(action)
    if not allowed(session) or run is None or not request_id.startswith("r") or len(request_id) > 48:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/nurse")
    record = store.load(runtime.redis, session.school.id, request_id)
    if record is None:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/nurse")
    if not can_act(session.member, session.school, record):
        return render(request, "message.html", 403, title_key="nurse", message_key="not_yours", link="/nurse")
    try:
        run(runtime, session, request_id)
    except Conflict:
        pass  # already resolved by someone else: the console shows how things stand now
    return RedirectResponse(f"/nurse?done={action}", status_code=303)
