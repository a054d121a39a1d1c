"""Server-rendered pages: the one-click acknowledgement and the dev outbox.

The acknowledgement page shows what the person needs to act (class, masked child, category, an
excerpt, the guardian to call) and the truth about ownership: acknowledging stops the escalation,
the owner stays who they were. The staff queue, the nurse console and the parent's page live in
staff.py, nurse.py and parent.py.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.api.deps import ShardsDep
from relay.base import keys, links, store, tokens
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.base.shards import Shards
from relay.base.store import RequestRecord, Status
from relay.core import actions
from relay.core.closing import OUTCOMES
from relay.core.notices import masked_name
from relay.core.permissions import can_act
from relay.core.views import owner_words, person
from relay.pages.views import class_name
from relay.pages.web import clock, render
from routing.directory import School, Staff
from routing.labels import CATEGORY_WORDS, URGENCY_WORDS, Category, Urgency

router = APIRouter(include_in_schema=False)


# Why a link does not work, from what links.resolve / tokens say (anything else: "invalid").
_LINK_REFUSALS = {
    "malformed link": "malformed",
    # A code no longer (or never) stored: expired, or mistyped; nothing tells the two apart.
    "unknown or expired link": "unknown",
    "expired token": "expired",  # the grant is there and signed, its time is up
    "link of another school": "foreign",
}


Granted = tuple[Runtime, links.AckLink, School, Staff | None, RequestRecord]


def _granted(shards: Shards, code: str) -> Granted | str:
    """The shard, the link's grant, the school's current directory, the person as it lists them now, and the
    request; or why there is none ("malformed", "unknown", "expired", "foreign", "invalid", "gone")."""
    link, why = None, "foreign"
    for runtime in shards.runtimes.values():  # a short code says its school only to the shard that keeps it
        try:
            link = links.resolve(runtime.redis, runtime.settings, runtime.directories.school_ids(), code)
            break
        except tokens.TokenError as exc:
            refusal = _LINK_REFUSALS.get(str(exc), "invalid")
            # Every shard but the school's own calls the link foreign: the school's own shard knows better.
            why = refusal if refusal != "foreign" else why
    home = shards.for_school(link.school) if link else None
    if link is None or home is None:
        return why
    found = home.directories.school(link.school)
    record = store.load(home.redis, link.school, link.request_id) if found else None
    if found is None or record is None:
        return "gone"
    return home, link, found[1], found[1].staff_member(link.staff_id), record


# Gone for good (410) when it expired; 403 for another school's link; otherwise 404.
_REFUSED_STATUS = {"expired": 410, "foreign": 403}


def _refused(request: Request, why: str) -> HTMLResponse:
    return render(request, "ack.html", _REFUSED_STATUS.get(why, 404), state="invalid", why=why)


def _still_entitled(member: Staff | None, school: School, record: RequestRecord) -> bool:
    """A link acts for its person only while the current directory still has them and lets them act:
    someone removed by a roster import (or no longer nurse) cannot stop the escalations by an old link."""
    return member is not None and can_act(member, school, record)


EXCERPT_CHARS = 60


def _about(school: School, record: RequestRecord) -> dict[str, Any]:
    """What the person acknowledging needs to act: class, masked child, category, an excerpt, who to call."""
    student = school.student(record.student_id)
    guardian = school.guardian(record.guardian_id)
    text = record.text if len(record.text) <= EXCERPT_CHARS else record.text[:EXCERPT_CHARS] + "…"
    acknowledged_by = person(school, record.acknowledged_by) if record.acknowledged_by else None
    return {
        "class_name": class_name(school, record.class_id),
        "child": masked_name(student.name if student else ""),
        "category": CATEGORY_WORDS[Category(record.category)],
        "urgency": f"{record.urgency} {URGENCY_WORDS[Urgency(record.urgency)]}",
        "excerpt": text,
        "guardian_name": guardian.name if guardian else "",
        "guardian_phone": (guardian.phone or "") if guardian else "",
        "owner": owner_words(school, record.owner) or "负责老师",
        "acknowledged_by": _named(acknowledged_by),
        "acknowledged_at": clock(record.acknowledged_at),
        "resolved_at": clock(record.resolved_at),
        "outcome": OUTCOMES.get(record.outcome or "", ""),
    }


def _named(who: dict[str, str] | None) -> str:
    if who is None:
        return ""
    return f"{who['name']}（{who['role_text']}）" if who["role_text"] else who["name"]


def _state(record: RequestRecord) -> str:
    if record.status is Status.resolved:
        return "closed"
    return "used" if record.acknowledged else "ask"


@router.get("/a/{code}")
async def ack_page(code: str, request: Request, shards: ShardsDep) -> HTMLResponse:
    """Shows a button rather than acknowledging: a chat app's link preview must not acknowledge.
    A link already used (by anyone) says who acknowledged and when; a closed request says so; no button."""
    granted = _granted(shards, code)
    if isinstance(granted, str):
        return _refused(request, granted)
    _, _, school, member, record = granted
    if not _still_entitled(member, school, record):
        return render(request, "ack.html", 403, state="revoked")
    return render(request, "ack.html", record=record, state=_state(record), about=_about(school, record))


@router.post("/a/{code}")
async def ack_confirm(code: str, request: Request, shards: ShardsDep) -> HTMLResponse:
    granted = _granted(shards, code)
    if isinstance(granted, str):
        return _refused(request, granted)
    runtime, link, school, member, record = granted
    if not _still_entitled(member, school, record):
        log.info("ack_link_refused", request_id=link.request_id, school_id=link.school, staff_id=link.staff_id,
                 reason="not in the current directory" if member is None else "may not act")
        return render(request, "ack.html", 403, state="revoked")
    if record.status is Status.resolved:
        return render(request, "ack.html", 409, record=record, state="closed", about=_about(school, record))
    if record.acknowledged:
        return render(request, "ack.html", record=record, state="used", about=_about(school, record))
    done = actions.acknowledge(runtime, school, link.request_id, link.staff_id, via="link")
    if done is None:
        return _refused(request, "gone")
    # Someone else may have been a moment faster: the page says who, as for a used link.
    state = "done" if done.acknowledged_by == link.staff_id else _state(done)
    return render(request, "ack.html", record=done, state=state, about=_about(school, done),
                  mine=done.owner == link.staff_id)


@router.get("/dev/outbox")
async def outbox(request: Request, shards: ShardsDep) -> HTMLResponse:
    if not shards.default.settings.dev_outbox:
        return render(request, "outbox.html", 404, entries=[], disabled=True)
    entries = []
    for runtime in shards.runtimes.values():
        for school_id in runtime.directories.school_ids():
            for raw in runtime.redis.lrange(keys.outbox(school_id), 0, 199):
                entries.append(dict(json.loads(raw), school_id=school_id))
    entries.sort(key=lambda e: e.get("sent_at", ""), reverse=True)
    return render(request, "outbox.html", entries=entries, disabled=False)
