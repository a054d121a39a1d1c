"""Who owns a request, who hears of it now, when it is due, and how it escalates.

The escalation chain is resolved to staff ids and due times here, at intake, and
stored with the request (a snapshot): a later change of the directory does not
re-route a request already in flight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from routing.calendar import SchoolCalendar, eta_text, seen_text, sla_due
from routing.classifier import Classification
from routing.directory import Role, School, Staff, Student
from routing.labels import Category, Urgency
from routing.roll_call import AT_ONCE, arrival


@dataclass(frozen=True)
class Notice:
    staff_id: str
    why: str  # owner, nurse, safety_officer, duty_leader, homeroom, on_duty
    held_until: dt.datetime | None = None  # waits for this person's digest then (school closed); None: at once


@dataclass(frozen=True)
class PlannedStep:
    index: int  # 1-based: the escalation_step this firing moves the request to
    due_at: dt.datetime
    notify: tuple[str, ...]  # staff ids


@dataclass(frozen=True)
class RoutingPlan:
    owner: str
    notify_now: tuple[Notice, ...]
    ack_due_at: dt.datetime | None
    resolve_due_at: dt.datetime | None
    escalation: tuple[PlannedStep, ...]
    school_time: bool  # the clocks run in school hours only (P1-P3)
    eta_text: str
    estimated: bool = False  # a due time runs through a year without holiday data (weekdays only)
    held_until: dt.datetime | None = None  # the owner sees it in the digest then (the school was closed)


class PlanError(ValueError):
    """The directory cannot route this request (e.g. a class without any academic-affairs teacher)."""


def _available(school: School, staff_id: str | None, day: dt.date) -> Staff | None:
    member = school.staff_member(staff_id) if staff_id else None
    return member if member is not None and not member.is_away(day) else None


def owner_for(school: School, student: Student, day: dt.date) -> str:
    """The class's academic-affairs teacher, or whoever stands in for them today."""
    school_class = school.school_class(student.class_id)
    if school_class is None:
        raise PlanError(f"unknown class {student.class_id!r}")
    assigned = school.staff_member(school_class.academic_affairs)
    if assigned is not None and not assigned.is_away(day):
        return assigned.id
    if assigned is not None and (backup := _available(school, assigned.backup_on(day), day)):
        return backup.id
    for member in school.with_role(Role.academic_affairs):
        if not member.is_away(day):
            return member.id
    if assigned is not None:
        return assigned.id  # everyone is away: the request still needs an owner
    raise PlanError(f"class {school_class.id!r} has no academic-affairs teacher")


def backup_for(school: School, owner: str, day: dt.date) -> str | None:
    member = school.staff_member(owner)
    if member is not None and (backup := _available(school, member.backup_on(day), day)):
        return backup.id
    for other in school.with_role(Role.academic_affairs):
        if other.id != owner and not other.is_away(day):
            return other.id
    return None


_RESPONDER_ROLES: dict[Category, tuple[Role, ...]] = {
    Category.medical: (Role.nurse,),
    Category.safety: (Role.safety_officer, Role.duty_leader),
}


def responders(school: School, category: Category) -> tuple[str, ...]:
    """Who answers an emergency of this category besides the owner."""
    roles = _RESPONDER_ROLES.get(category, (Role.duty_leader,))
    return tuple(s.id for role in roles for s in school.with_role(role))


def _targets(
    school: School, owner: str, category: Category, day: dt.date
) -> dict[str, Callable[[str], tuple[str, ...]]]:
    def role(name: str) -> tuple[str, ...]:
        try:
            return tuple(s.id for s in school.with_role(Role(name)))
        except ValueError:
            return ()

    backup = backup_for(school, owner, day)
    return {
        "owner": lambda _: (owner,),
        "backup": lambda _: (backup,) if backup else (),
        "responder": lambda _: responders(school, category),
        "role": role,
        "staff": lambda name: (name,) if school.staff_member(name) else (),
    }


def resolve_targets(
    school: School, targets: tuple[str, ...], owner: str, category: Category, day: dt.date
) -> tuple[str, ...]:
    table = _targets(school, owner, category, day)
    out: list[str] = []
    for target in targets:
        kind, _, name = target.partition(":")
        for staff_id in table.get(kind, lambda _: ())(name):
            if staff_id not in out:
                out.append(staff_id)
    return tuple(out)


def plan(classification: Classification, student: Student, school: School, now: dt.datetime) -> RoutingPlan:
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    urgency, category = classification.urgency, classification.category
    day = now.astimezone(school.zone).date()
    owner = owner_for(school, student, day)
    notices = [Notice(owner, "owner")] if urgency is not Urgency.P3 else []

    if urgency is Urgency.P0:
        roles = _RESPONDER_ROLES.get(category, (Role.duty_leader,))
        if category is Category.safety and classification.injured:
            roles = (*roles, Role.nurse)  # LABELS.md: a safety emergency with an injury reaches the nurse too
        for role in roles:
            notices += [Notice(s.id, role.value) for s in school.with_role(role)]
    elif urgency is Urgency.P1 and category in (Category.attendance, Category.pickup):
        school_class = school.school_class(student.class_id)
        if school_class is not None and school_class.homeroom and school.staff_member(school_class.homeroom):
            notices.append(Notice(school_class.homeroom, "homeroom"))

    # A year without holiday data never refuses a parent: its days are planned as weekdays and
    # weekends, and the plan says its due times are estimates.
    calendar = SchoolCalendar(school)
    when = arrival(school, calendar, urgency, category, now)
    on_duty = [Notice(s.id, "on_duty") for s in school.with_role(Role.duty_leader)] if when.on_duty else []
    if when.on_duty and not on_duty:
        when = AT_ONCE  # nobody is on duty: the owner, at once, as without a roll call
    if when.held_until is not None:
        notices = on_duty + [Notice(n.staff_id, n.why, when.held_until) for n in notices]

    unique: dict[str, Notice] = {}
    for notice in notices:
        unique.setdefault(notice.staff_id, notice)

    # A P1 held for the roll call is due from the roll call on: the owner has the same time to answer.
    start = when.held_until if urgency is Urgency.P1 and when.held_until is not None else now
    due = sla_due(school, urgency, start, calendar)
    school_time = due.school_time

    steps: list[PlannedStep] = []
    moment = start
    for step in school.sla[urgency].escalation:
        for _ in range(step.repeat + 1):
            moment = calendar.due(moment, step.after, school_time)
            notify = resolve_targets(school, step.notify, owner, category, day)
            steps.append(PlannedStep(len(steps) + 1, moment, notify))

    if on_duty:
        duty = school.staff_member(on_duty[0].staff_id)
        promise = f"{duty.name if duty else '值班老师'}（值班）将立即看到"
    elif urgency is Urgency.P1 and when.held_until is not None:
        owner_member = school.staff_member(owner)
        promise = seen_text(owner_member.name if owner_member else "", when.held_until, now, school.zone)
    else:
        promise = eta_text(due.promised, now, school.zone, calendar=calendar)
    return RoutingPlan(
        owner=owner,
        notify_now=tuple(unique.values()),
        ack_due_at=due.ack_due_at,
        resolve_due_at=due.resolve_due_at,
        escalation=tuple(steps),
        school_time=school_time,
        eta_text=promise,
        estimated=calendar.estimated,
        held_until=when.held_until if urgency is not Urgency.P0 else None,
    )
