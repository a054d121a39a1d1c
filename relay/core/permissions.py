"""Who may act on which request: one rule for the API, the staff pages and the nurse console.

Every staff member of a school sees its queue (and opening a medical request is audited);
acting on a request takes more:
- leaders (principal, duty leader, admin) act on every request of their school;
- the nurse and the safety officer on every medical or safety request;
- a class's own teachers (its academic-affairs teacher, its homeroom teacher, and the
  academic-affairs teacher's backup, who covers while they are away) on the requests of that class;
- anyone on a request they own, or that an escalation step has already called them to.

Another school's requests are never found at all (404); a request of one's own school that one
may not act on is refused with 403, since the queue already shows that it exists.
"""

from __future__ import annotations

from relay.base.store import RequestRecord
from routing.directory import Role, School, Staff

LEADERS = frozenset({Role.principal, Role.duty_leader, Role.admin})
RESPONDERS = frozenset({Role.nurse, Role.safety_officer})
RESPONDER_CATEGORIES = frozenset({"medical", "safety"})


def classes_of(staff: Staff, school: School) -> set[str]:
    """The classes whose requests are this person's to act on as one of the class's teachers."""
    mine = set()
    for school_class in school.classes:
        if staff.id in (school_class.academic_affairs, school_class.homeroom):
            mine.add(school_class.id)
            continue
        teacher = school.staff_member(school_class.academic_affairs)
        if teacher is not None and (teacher.backup == staff.id or any(p.backup == staff.id for p in teacher.leave)):
            mine.add(school_class.id)
    return mine


def called_in(record: RequestRecord) -> set[str]:
    """Everyone an escalation step already taken has notified."""
    return {staff_id for step in record.escalation[: record.escalation_step] for staff_id in step.notify}


def can_act(staff: Staff, school: School, record: RequestRecord) -> bool:
    if record.school_id != school.id or school.staff_member(staff.id) is None:
        return False
    roles = set(staff.roles)
    if roles & LEADERS:
        return True
    if roles & RESPONDERS and record.category in RESPONDER_CATEGORIES:
        return True
    if record.owner == staff.id or staff.id in called_in(record):
        return True
    return record.class_id in classes_of(staff, school)
