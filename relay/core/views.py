"""What each reader sees of a request: parents the status in plain words, staff everything."""

from __future__ import annotations

from typing import Any

from relay.base import clock, store
from relay.base.runtime import Runtime
from relay.base.store import RequestRecord, Status
from relay.core.closing import outcome_words
from routing.calendar import opening_text
from routing.directory import Role, School, Staff
from routing.labels import Urgency

# What a parent's timeline shows, and which fields of each entry.
_PARENT_TIMELINE = {
    "received": ("at", "kind"),
    "assigned": ("at", "kind", "owner"),
    "acknowledged": ("at", "kind", "by"),
    "replied": ("at", "kind", "by", "text"),
    "follow_up": ("at", "kind", "text"),
    "reassigned": ("at", "kind", "owner"),
    "on_site": ("at", "kind", "by"),
    "marked_urgent": ("at", "kind"),
    "resolved": ("at", "kind", "by", "outcome"),
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


def role_of(member: Staff) -> Role | None:
    return next((r for r in member.roles if r in _ROLE_WORDS), None)


def owner_words(school: School, staff_id: str) -> str | None:
    member = school.staff_member(staff_id)
    if member is None:
        return None
    role = role_of(member)
    return f"{member.name}（{_ROLE_WORDS[role]}）" if role else member.name


def person(school: School, staff_id: str | None) -> dict[str, str]:
    """A staff member as a parent reads them: name and role in words (someone since removed: "学校老师")."""
    member = school.staff_member(staff_id) if staff_id else None
    if member is None:
        return {"name": "学校老师", "role": "", "role_text": ""}
    role = role_of(member)
    return {"name": member.name, "role": role.value if role else "", "role_text": _ROLE_WORDS[role] if role else ""}


def _told(school: School, record: RequestRecord) -> list[dict[str, str]]:
    # The responders (校医, 安全员) first, the owner last: "校医刘芳、王丽老师".
    ordered = sorted(record.told, key=lambda staff_id: staff_id == record.owner)
    return [person(school, staff_id) for staff_id in ordered]


def _emergency_fields(school: School, record: RequestRecord) -> dict[str, Any]:
    """What the parent reads of an emergency as it happens (SHARED_NAMES.md): who was told, who has it,
    the nurse's arrival, how it ended."""
    acknowledged = None
    if record.acknowledged and record.acknowledged_at:
        who = person(school, record.acknowledged_by)
        acknowledged = {"name": who["name"], "role_text": who["role_text"], "at": record.acknowledged_at}
    on_site = None
    if record.on_site_at:
        on_site = {"name": person(school, record.on_site_by)["name"], "at": record.on_site_at}
    return {
        "school_phone": school.phone,
        "told": _told(school, record),
        "acknowledged": acknowledged,
        "on_site": on_site,
        "outcome": outcome_words(record.outcome),
        "closing_message": record.closing_message,
    }


# opening_text per (school snapshot, minute): it walks the calendar (~1 ms out of hours), and a parent's
# list or a burst of intakes asks the same question many times a minute.
_openings: dict[tuple[int, int], tuple[School, str | None]] = {}


def after_hours_text(school: School, record: RequestRecord) -> str | None:
    """A request that waits for school hours, read out of hours: when the school opens again."""
    if record.urgency == Urgency.P0 or record.status is not Status.received:
        return None
    now = clock.now_in(school.zone)
    key = (id(school), int(now.timestamp() // 60))
    kept = _openings.get(key)
    if kept is None or kept[0] is not school:
        if len(_openings) > 256:
            _openings.clear()
        kept = (school, opening_text(school, now.replace(second=0, microsecond=0)))
        _openings[key] = kept
    return kept[1]


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
    view.update(_emergency_fields(school, record))
    view["after_hours_text"] = after_hours_text(school, record)
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
        told=record.told,
        on_site_at=record.on_site_at,
        on_site_by=record.on_site_by,
        outcome=record.outcome,
        closing_message=record.closing_message,
    )
    if timeline:
        view["timeline"] = store.load_timeline(runtime.redis, school.id, record.id)
    return view
