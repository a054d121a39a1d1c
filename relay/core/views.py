"""What each reader sees of a request: parents the status in plain words, staff everything."""

from __future__ import annotations

from typing import Any

from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import RequestRecord
from routing.directory import Role, School

# What a parent's timeline shows, and which fields of each entry.
_PARENT_TIMELINE = {
    "received": ("at", "kind"),
    "assigned": ("at", "kind", "owner"),
    "acknowledged": ("at", "kind", "by"),
    "replied": ("at", "kind", "by", "text"),
    "follow_up": ("at", "kind", "text"),
    "reassigned": ("at", "kind", "owner"),
    "resolved": ("at", "kind", "by"),
}

_ROLE_WORDS = {
    Role.academic_affairs: "教务",
    Role.nurse: "校医",
    Role.safety_officer: "安全员",
    Role.duty_leader: "值班领导",
    Role.principal: "校长",
    Role.homeroom: "班主任",
    Role.admin: "管理员",
}


def owner_words(school: School, staff_id: str) -> str | None:
    member = school.staff_member(staff_id)
    if member is None:
        return None
    role = next((_ROLE_WORDS[r] for r in member.roles if r in _ROLE_WORDS), None)
    return f"{member.name}（{role}）" if role else member.name


def _base(school: School, record: RequestRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status.value,
        "urgency": record.urgency,
        "category": record.category,
        "owner": record.owner,
        "owner_name": owner_words(school, record.owner),
        "ack_due_at": record.ack_due_at,
        "resolve_due_at": record.resolve_due_at,
        "eta_text": record.eta_text,
        "estimated": record.estimated,
        "student_id": record.student_id,
        "text": record.text,
        "created_at": record.created_at,
        "replies": record.replies,
    }


def parent_view(
    runtime: Runtime,
    school: School,
    record: RequestRecord,
    timeline: bool = True,
    entries_known: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`entries_known`: the timeline when the caller just wrote it (intake), saving a round trip."""
    view = _base(school, record)
    if timeline:
        entries = []
        source = entries_known if entries_known is not None else store.load_timeline(runtime.redis, school.id, record.id)
        for entry in source:
            fields = _PARENT_TIMELINE.get(entry.get("kind", ""))
            if fields:
                entries.append({k: entry[k] for k in fields if k in entry})
        view["timeline"] = entries
    return view


def staff_view(runtime: Runtime, school: School, record: RequestRecord, timeline: bool = True) -> dict[str, Any]:
    view = _base(school, record)
    view.update(
        reasons=record.reasons,
        class_id=record.class_id,
        guardian_id=record.guardian_id,
        category_hint=record.category_hint,
        acknowledged_at=record.acknowledged_at,
        acknowledged_by=record.acknowledged_by,
        resolved_at=record.resolved_at,
        escalation_step=record.escalation_step,
        escalation=[s.model_dump() for s in record.escalation],
        directory_version=record.directory_version,
        updated_at=record.updated_at,
    )
    if timeline:
        view["timeline"] = store.load_timeline(runtime.redis, school.id, record.id)
    return view
