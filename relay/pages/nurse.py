"""The nurse console: every emergency that paged a nurse, with the guardian's contact, and big actions.

Made for a phone in a pocket: a list of cards, each with acknowledge, arrived ("已到场") and close.
Each action shows on the card ("✓ 已到场 09:51"). Closing takes two steps, a form (where the child
went, the words to the parent) and a confirmation: an emergency is not closed by one stray tap, nor
in silence. The guardian's name and phone are on this staff-only page and nowhere in the logs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from relay.api.bodies import clean_text
from relay.api.deps import RuntimeDep
from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord
from relay.core import actions, canned
from relay.core.closing import OUTCOMES, needs_message
from relay.core.permissions import can_act
from relay.pages.i18n import script_words, words
from relay.pages.sessions import SignedIn, StaffSession, checked_form
from relay.pages.views import queue_item, staff_name
from relay.pages.web import lang_of, render
from routing.directory import Role, School
from routing.labels import Category, Urgency

router = APIRouter(include_in_schema=False)

CONSOLE_ROLES = (Role.nurse, Role.safety_officer, Role.duty_leader, Role.principal, Role.admin)
MAX_TEXT = 2000


def for_nurse(school: School, record: RequestRecord) -> bool:
    """Every P0 that paged a nurse (medical, or any with an injury), and any request a nurse owns or an
    escalation step already called a nurse to."""
    nurses = {s.id for s in school.with_role(Role.nurse)}
    if record.urgency == Urgency.P0 and (record.category == Category.medical or nurses & set(record.told)):
        return True
    if record.owner in nurses:
        return True
    taken = record.escalation[: record.escalation_step]
    return any(staff_id in nurses for step in taken for staff_id in step.notify)


def allowed(session: StaffSession) -> bool:
    return any(role in session.member.roles for role in CONSOLE_ROLES)


def _hhmm(iso_text: str | None) -> str:
    return iso_text[11:16] if iso_text else ""


def card(school: School, record: RequestRecord, t: dict[str, str]) -> dict[str, Any]:
    """A console card: the queue row with the contact, and what has been done ("✓ 已到场 09:51")."""
    item = queue_item(school, record, t, contact=True)
    checks = []
    if record.acknowledged and record.acknowledged_at:
        checks.append(t["n_acked"].format(at=_hhmm(record.acknowledged_at),
                                          who=staff_name(school, record.acknowledged_by)))
    if record.on_site_at:
        checks.append(t["n_on_site"].format(at=_hhmm(record.on_site_at), who=staff_name(school, record.on_site_by)))
    item.update(checks=checks, on_site=bool(record.on_site_at), close_url=f"/nurse/requests/{record.id}/close")
    return item


def _items(request: Request, runtime: Runtime, session: StaffSession) -> list[dict[str, Any]]:
    t = words(lang_of(request))
    school = session.school
    return [card(school, r, t) for r in store.open_queue(runtime.redis, school.id) if for_nurse(school, r)]


DONE_WORDS = {"ack": "n_done_ack", "arrived": "n_done_arrived", "handled": "n_done_handled"}


@router.get("/nurse")
async def nurse_console(request: Request, session: SignedIn, runtime: RuntimeDep, done: str = "") -> HTMLResponse:
    if not allowed(session):
        return render(request, "message.html", 403, title_key="nurse", message_key="nurse_only", link="/staff")
    return render(request, "nurse.html", session=session, items=_items(request, runtime, session),
                  script_words=script_words(lang_of(request)), feed="/nurse/queue.json",
                  done_key=DONE_WORDS.get(done[:16], "done" if done else ""))


@router.get("/nurse/queue.json")
async def nurse_json(request: Request, session: SignedIn, runtime: RuntimeDep) -> JSONResponse:
    items = _items(request, runtime, session) if allowed(session) else []
    return JSONResponse({"items": items}, headers={"Cache-Control": "no-store"})


def _load(runtime: Runtime, session: StaffSession, request_id: str) -> RequestRecord | None:
    if not allowed(session) or not request_id.startswith("r") or len(request_id) > 48:
        return None
    return store.load(runtime.redis, session.school.id, request_id)


def _close_page(request: Request, session: StaffSession, record: RequestRecord, http_status: int = 200,
                step: str = "form", outcome: str = "", message: str = "", note: str = "",
                error_key: str = "") -> HTMLResponse:
    t = words(lang_of(request))
    return render(request, "nurse_close.html", http_status, session=session, record=record,
                  item=card(session.school, record, t), outcomes=OUTCOMES, step=step, outcome=outcome,
                  message=message, note=note, error_key=error_key, message_required=needs_message(record))


@router.get("/nurse/requests/{request_id}/close")
async def close_form(request_id: str, request: Request, session: SignedIn, runtime: RuntimeDep) -> HTMLResponse:
    record = _load(runtime, session, request_id)
    if record is None:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/nurse")
    if not record.is_open:
        return render(request, "message.html", 409, title_key="nurse", message_key="closed", link="/nurse")
    return _close_page(request, session, record)


def _field(form: FormData, name: str) -> str:
    return clean_text(str(form.get(name) or ""))[:MAX_TEXT]


def _handled(request: Request, runtime: Runtime, session: StaffSession, record: RequestRecord,
             form: FormData) -> Response:
    """The close form's two steps: checked and shown for confirmation, then (confirmed) closed."""
    outcome, message, note = _field(form, "outcome"), _field(form, "message"), _field(form, "note")

    def again(http_status: int, error_key: str = "", step: str = "form") -> HTMLResponse:
        return _close_page(request, session, record, http_status, step=step, outcome=outcome, message=message,
                           note=note, error_key=error_key)

    if not record.is_open:
        return render(request, "message.html", 409, title_key="nurse", message_key="closed", link="/nurse")
    if outcome and outcome not in OUTCOMES:
        return again(422, "n_unknown_outcome")
    if not message and needs_message(record):
        return again(422, "n_message_required")
    if canned.unfilled(message):
        return again(422, "n_placeholder")
    if form.get("confirmed") != "yes":
        return again(200, step="confirm")
    try:
        actions.resolve(runtime, session.school, record.id, session.id, note or None, message=message or None,
                        outcome=outcome or None)
    except Conflict as exc:
        # Raised to P1/P0 meanwhile: say so rather than close in silence. Already resolved by someone
        # else: the console shows how things stand now.
        if exc.code == "message_required":
            return again(422, "n_message_required")
    return RedirectResponse("/nurse?done=handled", status_code=303)


NURSE_ACTIONS = {
    "ack": lambda rt, s, rid: actions.acknowledge(rt, s.school, rid, s.id, via="page"),
    "arrived": lambda rt, s, rid: actions.on_site(rt, s.school, rid, s.id, via="page"),
}


@router.post("/nurse/requests/{request_id}/{action}")
async def nurse_act(request_id: str, action: str, request: Request, session: SignedIn,
                    runtime: RuntimeDep) -> Response:
    form = await checked_form(request, session)
    run = NURSE_ACTIONS.get(action)
    record = _load(runtime, session, request_id)
    if (run is None and action != "handled") or record is None:
        return render(request, "message.html", 404, title_key="not_found", message_key="not_found", link="/nurse")
    if not can_act(session.member, session.school, record):
        return render(request, "message.html", 403, title_key="nurse", message_key="not_yours", link="/nurse")
    if run is None:
        return _handled(request, runtime, session, record, form)
    try:
        run(runtime, session, request_id)
    except Conflict:
        pass  # already resolved by someone else: the console shows how things stand now
    return RedirectResponse(f"/nurse?done={action}", status_code=303)
