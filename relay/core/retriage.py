"""A request's urgency changed after intake: the parent says it is urgent, or staff correct the triage.

Raising to P0 does what intake does for an emergency: the owner and the P0 responders of its
category are paged at once, the escalation chain is planned from now, and the request needs a
fresh acknowledgement (whoever acknowledged a routine question has not acknowledged an emergency).
Lowering re-plans due times from the request's arrival and disarms the escalation steps the new
urgency does not have. Every change is one transaction with its timeline entry; a staff change is
also kept as a correction (`relay corrections export` turns them into training data).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import redis

from relay.base import clock, keys
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.base.store import (
    Conflict,
    PlannedStepRecord,
    RequestRecord,
    Status,
    add_timeline,
    iso,
    iso_due,
    now_in,
    transition,
)
from relay.core import audit
from relay.core.notice_events import Event
from relay.core.notices import queue_notice
from relay.core.sla import stop_reminders
from relay.core.timers import arm, disarm, escalate_timer
from routing.classifier import Classification
from routing.directory import School
from routing.labels import Category, Urgency
from routing.plan import plan

PARENT_MARKED = "家长标记为紧急 (the parent marked it urgent)"
CORRECTIONS_KEPT = 10_000


@dataclass(frozen=True)
class Change:
    urgency: Urgency
    category: Category
    by: str  # a staff id, or "guardian"
    reason: str
    kind: str  # the timeline entry: "marked_urgent" or "retriaged"


def _replan(pipe: Any, runtime: Runtime, school: School, record: RequestRecord, change: Change) -> bool:
    """Apply the change to the record on a pipeline in MULTI; False when it changes nothing."""
    before_urgency, before_category = Urgency(record.urgency), Category(record.category)
    if (change.urgency, change.category) == (before_urgency, before_category):
        return False
    student = school.student(record.student_id)
    if student is None:
        raise Conflict("student_gone", "该学生已不在名册中 (the student is no longer on the roster)")
    raising = change.urgency.rank < before_urgency.rank
    now = clock.now_in(school.zone)
    # A raise is an emergency now; a lowering keeps the promise made from the request's arrival.
    base = now if raising else dt.datetime.fromisoformat(record.created_at)
    reasons = (*record.reasons, change.reason)
    routing = plan(Classification(change.urgency, change.category, reasons), student, school, base)

    for step in range(1, len(record.escalation) + 1):
        disarm(pipe, record.school_id, escalate_timer(record.id, step))
    record.urgency, record.category = change.urgency, change.category
    record.reasons = list(reasons)
    record.ack_due_at = iso(routing.ack_due_at) if routing.ack_due_at else None
    record.resolve_due_at = iso(routing.resolve_due_at) if routing.resolve_due_at else None
    record.eta_text = routing.eta_text
    record.estimated = routing.estimated
    record.escalation = [PlannedStepRecord(step=s.index, due_at=iso_due(s.due_at), notify=list(s.notify))
                         for s in routing.escalation]
    record.escalation_step = 0
    if change.urgency is Urgency.P0 and record.status is Status.acknowledged:
        record.status, record.acknowledged_at, record.acknowledged_by = Status.received, None, None
        stop_reminders(pipe, record)
    add_timeline(pipe, record, change.kind, iso(now), by=change.by, reason=change.reason,
                 urgency_from=before_urgency.value, urgency=change.urgency.value,
                 category_from=before_category.value, category=change.category.value)
    if change.urgency is Urgency.P0 and raising:
        record.told = [notice.staff_id for notice in routing.notify_now]
        for notice in routing.notify_now:
            queue_notice(pipe, runtime, record, notice.staff_id, notice.why, Event.urgent, actor=change.by)
    if record.status is Status.received and routing.escalation:
        arm(pipe, record.school_id, escalate_timer(record.id, 1), routing.escalation[0].due_at.timestamp())
    return True


def mark_urgent(runtime: Runtime, school: School, request_id: str, guardian_id: str) -> tuple[RequestRecord, bool] | None:
    """The parent says it is urgent: P0 at once, never lowered by them. (record, changed); None: not theirs."""

    def change(record: RequestRecord, pipe: Any) -> bool:
        if record.guardian_id != guardian_id:
            raise LookupError(request_id)
        if not record.is_open:
            raise Conflict("already_resolved", "该请求已办结 (the request is already resolved)")
        if record.urgency == Urgency.P0.value:
            return False  # a repeat does nothing
        return _replan(pipe, runtime, school, record, Change(
            Urgency.P0, Category(record.category), "guardian", PARENT_MARKED, "marked_urgent"))

    try:
        done = transition(runtime.redis, school.id, request_id, change)
    except LookupError:
        return None
    if done is not None and done[1]:
        log.info("marked_urgent", request_id=request_id, school_id=school.id)
    return done


def raise_by(runtime: Runtime, school: School, request_id: str, urgency: Urgency, category: Category,
             by: str, reason: str) -> bool:
    """Raise an open request (never lower it): what a second opinion may do. True when it changed."""

    def change(record: RequestRecord, pipe: Any) -> bool:
        if not record.is_open or urgency.rank >= Urgency(record.urgency).rank:
            return False
        return _replan(pipe, runtime, school, record, Change(urgency, category, by, reason, "raised"))

    done = transition(runtime.redis, school.id, request_id, change)
    return bool(done and done[1])


def retriage(
    runtime: Runtime, school: School, request_id: str, staff_id: str,
    urgency: Urgency, category: Category | None, reason: str,
) -> RequestRecord | None:
    """Staff correct the triage; the correction is kept with the message for training."""
    kept: dict[str, Any] = {}

    def change(record: RequestRecord, pipe: Any) -> bool:
        if not record.is_open:
            raise Conflict("already_resolved", "该请求已办结 (the request is already resolved)")
        before = (record.urgency, record.category)
        changed = _replan(pipe, runtime, school, record, Change(
            urgency, category or Category(record.category), staff_id, reason, "retriaged"))
        if changed:
            kept.update(id=record.id, text=record.text, urgency=record.urgency, category=record.category,
                        was={"urgency": before[0], "category": before[1]}, by=staff_id, reason=reason,
                        at=now_in(record), category_hint=record.category_hint)
            pipe.lpush(keys.corrections(school.id), json.dumps(kept, ensure_ascii=False))
            pipe.ltrim(keys.corrections(school.id), 0, CORRECTIONS_KEPT - 1)
            audit.record(pipe, school.id, staff_id, "retriage", record.id)
        return changed

    done = transition(runtime.redis, school.id, request_id, change)
    if done is None:
        return None
    if done[1]:
        log.info("retriaged", request_id=request_id, school_id=school.id, staff_id=staff_id,
                 urgency=done[0].urgency, category=done[0].category)
    return done[0]


def corrections(connection: redis.Redis, school_id: str) -> list[dict[str, Any]]:
    """The school's corrections, oldest first, as `relay eval` / `relay train` read them."""
    rows = [json.loads(raw) for raw in reversed(connection.lrange(keys.corrections(school_id), 0, -1))]
    return [{"id": f"{row['id']}.{n}", "text": row["text"], "urgency": row["urgency"], "category": row["category"],
             "writer": f"corrections-{school_id}", "was": row["was"], "reason": row["reason"], "at": row["at"]}
            for n, row in enumerate(rows)]
