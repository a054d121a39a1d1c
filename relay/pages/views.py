"""What the staff and nurse pages show of a request, in the reader's language.

One function per shape (a queue row, a timeline line) serves both the server-rendered page
and the JSON its script refreshes from, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from relay.base import clock as relay_clock
from relay.base.store import RequestRecord, Status
from relay.core.views import owner_words
from relay.pages.web import clock
from routing.directory import School
from routing.labels import Urgency

SNIPPET_CHARS = 80


def class_name(school: School, class_id: str) -> str:
    found = school.school_class(class_id)
    return found.name if found else class_id


def staff_name(school: School, staff_id: str | None) -> str:
    if not staff_id:
        return ""
    return owner_words(school, staff_id) or staff_id


def is_overdue(record: RequestRecord, now: float | None = None) -> bool:
    due = record.next_due()
    return bool(due) and dt.datetime.fromisoformat(str(due)).timestamp() < (now or relay_clock.now())


def plain_span(seconds: float, t: dict[str, str]) -> str:
    """`96` → "1分36秒", `24` → "24秒", `7500` → "2小时5分": two units at most, none of them zero-padded."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, t["u_d"]), (hours, t["u_h"]), (minutes, t["u_m"]), (secs, t["u_s"])]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return "".join(f"{n}{unit}" for n, unit in parts[:2] if n or len(parts) == 1)


def need_of(record: RequestRecord) -> str:
    """What the next due time asks for: an acknowledgement, or the resolution."""
    return "ack" if record.status is Status.received and record.ack_due_at else "resolve"


def timer_words(record: RequestRecord, t: dict[str, str], now: float | None = None) -> str:
    """"1分36秒内需确认" or "已超时24秒" (live.js keeps it ticking with the same words)."""
    due = record.next_due()
    if not due:
        return ""
    left = dt.datetime.fromisoformat(str(due)).timestamp() - (now or relay_clock.now())
    if left < 0:
        return t["t_late"].format(span=plain_span(-left, t))
    return t["t_" + need_of(record) + "_in"].format(span=plain_span(left, t))


def waits_for_ack(record: RequestRecord) -> bool:
    """An emergency nobody has acknowledged yet: the queue's tab title counts these."""
    return record.urgency == Urgency.P0 and record.status is Status.received


def queue_item(school: School, record: RequestRecord, t: dict[str, str], contact: bool = False) -> dict[str, Any]:
    """A queue row. `contact`: the guardian's name and phone too (the nurse console; never logged)."""
    student = school.student(record.student_id)
    text = record.text if contact else (record.text[:SNIPPET_CHARS] + ("…" if len(record.text) > SNIPPET_CHARS else ""))
    item: dict[str, Any] = {
        "id": record.id,
        "url": f"/staff/requests/{record.id}",
        "urgency": record.urgency,
        "urgency_words": f"{record.urgency} {t['u_' + record.urgency]}",
        "category_words": t.get("c_" + record.category, record.category),
        "status": record.status.value,
        "status_words": t["s_" + record.status.value],
        "class_name": class_name(school, record.class_id),
        "student_name": student.name if student else record.student_id,
        "owner_words": staff_name(school, record.owner),
        "text": text,
        "due": record.next_due(),
        "due_clock": clock(record.next_due()),
        "overdue": is_overdue(record),
        "received_clock": clock(record.created_at),
        "need": need_of(record),
        "timer_words": timer_words(record, t),
        # P0 and P1 can be acknowledged from the queue's row, without opening the request.
        "row_ack": record.urgency in (Urgency.P0, Urgency.P1) and record.status is Status.received,
    }
    if contact:
        guardian = school.guardian(record.guardian_id)
        item["guardian_name"] = guardian.name if guardian else ""
        item["guardian_phone"] = (guardian.phone or "") if guardian else ""
    return item


def _who(school: School, by: Any, t: dict[str, str]) -> str:
    if not by:
        return ""
    if by == "guardian":
        return t["by_guardian"]
    return staff_name(school, str(by))


def _channel(value: Any, t: dict[str, str]) -> str:
    return t.get(f"ch_{value}", str(value)) if value else ""


def _delivery_detail(school: School, entry: dict[str, Any], t: dict[str, str]) -> str:
    """"王老师 企业微信 渠道响应超时": whom, over which channel, and why it went wrong, in words."""
    to = entry.get("to")
    reason = entry.get("reason")
    parts = [t["by_guardian"] if str(to or "").startswith("guardian") else staff_name(school, to),
             _channel(entry.get("channel"), t),
             t.get(f"why_{reason}", "") if reason and reason != "ok" else ""]
    if entry.get("next_channel"):
        parts.append(t["next_channel"].format(channel=_channel(entry["next_channel"], t)))
    return " ".join(p for p in parts if p)


def timeline_lines(school: School, entries: list[dict[str, Any]], t: dict[str, str]) -> list[dict[str, str]]:
    """Each timeline entry as one line: when, what, who, and its text if it has one; names and words, never ids."""
    lines = []
    for entry in entries:
        kind = str(entry.get("kind", ""))
        who = _who(school, entry.get("by"), t)
        detail = ""
        if kind in ("replied", "note", "follow_up"):
            detail = str(entry.get("text", ""))
        elif kind == "reassigned":
            detail = f"→ {staff_name(school, entry.get('owner'))}" + (f"：{entry['reason']}" if entry.get("reason") else "")
        elif kind == "assigned":
            detail = f"→ {staff_name(school, entry.get('owner'))}"
        elif kind == "resolved" and entry.get("note"):
            detail = str(entry["note"])
        elif kind == "escalated":
            detail = "、".join(staff_name(school, s) for s in entry.get("notify", []))
        elif kind.startswith("delivery") or kind in ("delivered", "fallback_unacknowledged"):
            detail = _delivery_detail(school, entry, t)
        elif kind in ("received", "retriaged", "marked_urgent"):
            urgency, category = entry.get("urgency"), entry.get("category")
            detail = " · ".join(w for w in (
                f"{urgency} {t.get('u_' + str(urgency), '')}".strip() if urgency else "",
                t.get(f"c_{category}", "") if category else "",
                str(entry.get("reason") or "") if kind != "received" else "") if w)
        lines.append({"at": clock(entry.get("at")), "kind": kind, "words": t.get("k_" + kind, kind),
                      "who": who, "detail": detail})
    return lines
