"""What the staff and nurse pages show of a request, in the reader's language.

One function per shape (a queue row, a timeline line) serves both the server-rendered page
and the JSON its script refreshes from, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from relay.base import clock as relay_clock
from relay.base.store import RequestRecord
from relay.core.views import owner_words
from relay.pages.web import clock
from routing.directory import School

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
    }
    if contact:
        guardian = school.guardian(record.guardian_id)
        item["guardian_name"] = guardian.name if guardian else ""
        item["guardian_phone"] = (guardian.phone or "") if guardian else ""
    return item


def timeline_lines(school: School, entries: list[dict[str, Any]], t: dict[str, str]) -> list[dict[str, str]]:
    """Each timeline entry as one line: when, what, who, and its text if it has one."""
    lines = []
    for entry in entries:
        kind = str(entry.get("kind", ""))
        who = staff_name(school, entry.get("by")) if entry.get("by") else ""
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
        elif kind.startswith("delivery") or kind == "delivered":
            detail = " ".join(str(v) for v in (staff_name(school, entry.get("to")), entry.get("channel"),
                                                entry.get("reason")) if v)
        elif kind == "received":
            detail = " ".join(str(entry.get(k, "")) for k in ("urgency", "category"))
        lines.append({"at": clock(entry.get("at")), "kind": kind, "words": t.get("k_" + kind, kind),
                      "who": who, "detail": detail})
    return lines
