"""Staff actions on a request, each one atomic state change with its timeline entry.

Each action appends to the school's audit log in the same transaction (relay/core/audit.py).
Acknowledging disarms every escalation timer in the same transaction; pending
notifications that an acknowledgement makes pointless check the status before
they send, so nothing pages anyone after an ack.
"""

from __future__ import annotations

from typing import Any

from relay.base import clock, store
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord, Status, add_timeline, now_in
from relay.core import audit, canned
from relay.core.closing import OUTCOMES, needs_message
from relay.core.notice_events import Event
from relay.core.notices import parent_can_hear, queue_notice, queue_parent_notice
from relay.core.sla import arm_reminder, stop_reminders
from relay.core.timers import disarm, escalate_timer
from routing.directory import School


def _stop_escalation(pipe: Any, record: RequestRecord) -> None:
    for step in range(1, len(record.escalation) + 1):
        disarm(pipe, record.school_id, escalate_timer(record.id, step))


def _ack(pipe: Any, runtime: Runtime, school: School, record: RequestRecord, staff_id: str, via: str,
         tell_parent: bool = True) -> bool:
    """The one state change after which no escalation, retry or fallback page for this request goes out.

    The parent hears who has their request ("王老师已接手") unless the same action answers it at once."""
    if record.acknowledged:
        return False
    at = now_in(record)
    record.status = Status.acknowledged
    record.acknowledged_at = at
    record.acknowledged_by = staff_id
    _stop_escalation(pipe, record)
    # No message to the acknowledger: the page or link they acted on says it is theirs now.
    add_timeline(pipe, record, "acknowledged", at, by=staff_id, via=via)
    if tell_parent and parent_can_hear(runtime.redis, runtime, record):
        queue_parent_notice(pipe, runtime, record, Event.assigned, owner_id=staff_id)
    arm_reminder(pipe, school, record)
    return True


def _updated(pipe: Any, record: RequestRecord) -> None:
    """A note, a reply or a resolution is the update that an acknowledged P0 owes: reminders stop."""
    stop_reminders(pipe, record)


def _refuse_closed(record: RequestRecord) -> None:
    if record.status is Status.resolved:
        raise Conflict("already_resolved", "该请求已办结 (the request is already resolved)")


def _refuse_placeholder(text: str | None) -> None:
    if text and canned.unfilled(text):
        raise Conflict("unfilled_placeholder", "回复中还有【请填写：…】，请先填写或删去 "
                                               "(the reply still holds a placeholder to fill in)")


def _run(runtime: Runtime, school: School, request_id: str, change: Any) -> RequestRecord | None:
    done = store.transition(runtime.redis, school.id, request_id, change)
    return done[0] if done else None


def acknowledge(runtime: Runtime, school: School, request_id: str, staff_id: str, via: str = "api") -> RequestRecord | None:
    def change(record: RequestRecord, pipe: Any) -> None:
        audit.record(pipe, school.id, staff_id, "ack", record.id)
        if _ack(pipe, runtime, school, record, staff_id, via):
            log.info("acknowledged", request_id=record.id, school_id=school.id, staff_id=staff_id, via=via)

    return _run(runtime, school, request_id, change)


def claim(runtime: Runtime, school: School, request_id: str, staff_id: str) -> RequestRecord | None:
    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        audit.record(pipe, school.id, staff_id, "claim", record.id)
        first = _ack(pipe, runtime, school, record, staff_id, "claim")
        if record.owner != staff_id:
            add_timeline(pipe, record, "claimed", now_in(record), by=staff_id, previous_owner=record.owner)
            record.owner = staff_id
            if not first and parent_can_hear(runtime.redis, runtime, record):
                # Someone else has it now: the parent hears the new name (the step is the moment, in ms).
                queue_parent_notice(pipe, runtime, record, Event.assigned, step=int(clock.now() * 1000),
                                    owner_id=staff_id)

    return _run(runtime, school, request_id, change)


def reply(runtime: Runtime, school: School, request_id: str, staff_id: str, text: str) -> RequestRecord | None:
    _refuse_placeholder(text)

    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        audit.record(pipe, school.id, staff_id, "reply", record.id)
        _ack(pipe, runtime, school, record, staff_id, "reply", tell_parent=False)
        _updated(pipe, record)
        at = now_in(record)
        record.replies.append({"at": at, "by": staff_id, "text": text})
        record.status = Status.answered
        add_timeline(pipe, record, "replied", at, by=staff_id, text=text)
        if parent_can_hear(runtime.redis, runtime, record):
            # One message per reply: the step is the reply's number.
            queue_parent_notice(pipe, runtime, record, Event.answered, step=len(record.replies),
                                owner_id=staff_id)

    return _run(runtime, school, request_id, change)


def resolve(runtime: Runtime, school: School, request_id: str, staff_id: str, note: str | None, *,
            message: str | None = None, outcome: str | None = None,
            require_message: bool = True) -> RequestRecord | None:
    """Close the request. `message` reaches the parent like a reply and is kept as the closing message;
    `note` stays internal. A P0/P1 whose parent has heard nothing yet is not closed without a message
    (Conflict "message_required"), unless the caller closes it for another reason (a merge)."""
    if outcome is not None and outcome not in OUTCOMES:
        raise Conflict("unknown_outcome", f"未知的去向 {outcome!r}（可选：{'、'.join(OUTCOMES.values())}）")
    _refuse_placeholder(message)

    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        if require_message and not message and needs_message(record):
            raise Conflict("message_required", "请先写一句给家长的话再办结：紧急和当天的请求办结时须告知家长结果 "
                                               "(closing a P0/P1 needs a message to the parent)")
        audit.record(pipe, school.id, staff_id, "resolve", record.id)
        _ack(pipe, runtime, school, record, staff_id, "resolve", tell_parent=False)
        _updated(pipe, record)
        at = now_in(record)
        record.status = Status.resolved
        record.resolved_at = at
        record.outcome = outcome
        if message:
            record.closing_message = message
            record.replies.append({"at": at, "by": staff_id, "text": message, "closing": True})
        add_timeline(pipe, record, "resolved", at, by=staff_id, note=note, message=message, outcome=outcome)
        if message and parent_can_hear(runtime.redis, runtime, record):
            # The closing words reach the parent as a reply does: the step is the reply's number.
            queue_parent_notice(pipe, runtime, record, Event.answered, step=len(record.replies), owner_id=staff_id)

    return _run(runtime, school, request_id, change)


def on_site(runtime: Runtime, school: School, request_id: str, staff_id: str, via: str = "api") -> RequestRecord | None:
    """The nurse is with the child ("已到场"): acknowledges if nobody had, and is the update a P0 owes.
    The first arrival is kept; a repeat changes nothing."""

    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        audit.record(pipe, school.id, staff_id, "on_site", record.id)
        _ack(pipe, runtime, school, record, staff_id, via)
        if record.on_site_at:
            return
        _updated(pipe, record)
        at = now_in(record)
        record.on_site_at, record.on_site_by = at, staff_id
        add_timeline(pipe, record, "on_site", at, by=staff_id)

    return _run(runtime, school, request_id, change)


def note(runtime: Runtime, school: School, request_id: str, staff_id: str, text: str) -> RequestRecord | None:
    """An internal note: staff see it, the parent does not."""

    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        audit.record(pipe, school.id, staff_id, "note", record.id)
        _updated(pipe, record)
        add_timeline(pipe, record, "note", now_in(record), by=staff_id, text=text)

    return _run(runtime, school, request_id, change)


def reassign(
    runtime: Runtime, school: School, request_id: str, staff_id: str, to: str, reason: str
) -> RequestRecord | None:
    if school.staff_member(to) is None:
        raise Conflict("unknown_staff", "未找到该同事 (no such colleague)")

    def change(record: RequestRecord, pipe: Any) -> None:
        _refuse_closed(record)
        audit.record(pipe, school.id, staff_id, "reassign", record.id)
        if record.owner == to:
            return
        previous = record.owner
        record.owner = to
        add_timeline(pipe, record, "reassigned", now_in(record), by=staff_id, owner=to, previous_owner=previous,
                     reason=reason)
        # Each reassignment is its own notification: the step is the moment, in ms.
        queue_notice(pipe, runtime, record, to, "owner", Event.reassigned, step=int(clock.now() * 1000),
                     actor=staff_id)

    return _run(runtime, school, request_id, change)
