"""SLA jobs beyond escalation: update reminders, fallback to the next contact, the morning digest, outbreaks.

Each job reads the request's current state and acts only if it still calls for it, in
one transaction with the timer it answers; running it twice does nothing more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis

from relay.base import clock, keys, metrics, store
from relay.base.log import log
from relay.base.runtime import Runtime, get_runtime
from relay.base.store import RequestRecord, Status, add_timeline, now_in, text
from relay.core import deliveries
from relay.core.deliveries import Delivery, event_id
from relay.core.notice_events import Event
from relay.core.notices import queue_notice
from relay.core.timers import arm, digest_timer, disarm, fallback_timer, remind_timer
from routing.calendar import SchoolCalendar
from routing.directory import Role, School
from routing.labels import Urgency
from routing.outbreak import contagious_kind, is_contagious
from routing.roll_call import held_until

# --- reminders: an acknowledged P0 with no update ----------------------------------------


def arm_reminder(pipe: Any, school: School, record: RequestRecord, step: int = 1) -> None:
    """After an ack, remind the owner if nothing happens within `update_within` (P0 policies that set it)."""
    policy = school.sla.get(Urgency(record.urgency))
    if policy is None or policy.update_within is None:
        return
    record.reminder_step = step - 1
    arm(pipe, school.id, remind_timer(record.id, step), clock.now() + policy.update_within.seconds)


def stop_reminders(pipe: Any, record: RequestRecord) -> None:
    for step in (1, 2):
        disarm(pipe, record.school_id, remind_timer(record.id, step))


def remind(school_id: str, rest: str) -> str:
    """Step 1 reminds the owner; step 2 escalates to the duty leader. An update in between stops both."""
    request_id, _, step_text = rest.rpartition("|")
    step = int(step_text)
    runtime = get_runtime()
    current = runtime.directories.school(school_id)

    def change(record: RequestRecord, pipe: Any) -> str:
        disarm(pipe, school_id, remind_timer(request_id, step))
        if record.status is not Status.acknowledged or record.reminder_step != step - 1 or current is None:
            return "stale"
        record.reminder_step = step
        targets = [record.owner]
        if step >= 2:
            targets += [s.id for s in current[1].with_role(Role.duty_leader) if s.id != record.owner]
        add_timeline(pipe, record, "reminded" if step == 1 else "escalated_no_update", now_in(record),
                     step=step, notify=targets)
        for staff_id in targets:
            queue_notice(pipe, runtime, record, staff_id, "reminder", Event.reminder, step)
        if step == 1:
            arm_reminder(pipe, current[1], record, step=2)
        return "reminded"

    done = store.transition(runtime.redis, school_id, request_id, change)
    return done[1] if done else "unknown"


# --- fallback: an unacknowledged P0 notification tries the person's next contact -------------


def fallback(school_id: str, first_event_id: str) -> str:
    runtime = get_runtime()
    r = runtime.redis
    timer_id = fallback_timer(first_event_id)
    first = deliveries.load(r, school_id, first_event_id)
    if first is None:
        disarm(r, school_id, timer_id)
        return "unknown"
    nxt = first.fallback()
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                # The next delivery, its job and the timer's removal go in one EXEC: a worker killed half-way
                # leaves the timer armed (it fires again after the lease), never a fallback half made.
                deliveries.watch(pipe, school_id, nxt.event_id)
                pipe.watch(keys.request(school_id, first.request_id))
                record = store.load(pipe, school_id, first.request_id)
                outcome = "stale" if record is None or record.acknowledged else None
                if outcome is None and deliveries.exists(pipe, school_id, nxt.event_id):
                    outcome = "duplicate"  # a duplicate firing finds the next delivery already there
                pipe.multi()
                disarm(pipe, school_id, timer_id)
                if record is not None and outcome is None:
                    add_timeline(pipe, record, "fallback_unacknowledged", now_in(record), event_id=nxt.event_id,
                                 to=first.recipient_id, contact_index=nxt.contact_index)
                    deliveries.queue(pipe, runtime, nxt)
                pipe.execute()
                return outcome or "fallback"
            except redis.WatchError:
                continue


def arm_fallback(pipe: Any, runtime: Runtime, school: School, record: RequestRecord, delivery: Delivery) -> None:
    if not delivery.stopped_by_ack or delivery.for_guardian:
        return  # parent notices have one contact and are not stopped by an ack
    staff = school.staff_member(delivery.recipient_id)
    more = staff is not None and delivery.contact_index + 1 < len(staff.contacts)
    if record.urgency == Urgency.P0 and more:
        arm(pipe, school.id, fallback_timer(delivery.event_id), clock.now() + runtime.settings.fallback_after_seconds)


# --- the morning digest: routine notifications out of hours wait for the school day -----------


FYI_MARK = " fyi"  # after a held request id: an FYI copy, worth reading even once someone has acknowledged


def hold_for_digest(pipe: Any, record: RequestRecord, staff_id: str, until: dt.datetime, fyi: bool = False) -> None:
    pipe.rpush(keys.digest(record.school_id, staff_id), record.id + (FYI_MARK if fyi else ""))
    # Every held notification for this person points at the same roll call: one timer, one digest a morning.
    arm(pipe, record.school_id, digest_timer(staff_id), until.timestamp())


def _hold_ids(pipe: Any, school_id: str, request_ids: list[str], staff_id: str, until: dt.datetime) -> None:
    pipe.rpush(keys.digest(school_id, staff_id), *(i + FYI_MARK for i in request_ids))
    arm(pipe, school_id, digest_timer(staff_id), until.timestamp())


def _held(entry: str) -> tuple[str, bool]:
    request_id, _, mark = entry.partition(" ")
    return request_id, bool(mark)


def digest(school_id: str, staff_id: str) -> str:
    runtime = get_runtime()
    r = runtime.redis
    held_key = keys.digest(school_id, staff_id)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                # Taking the held list and queueing the digest are one EXEC: a worker killed in between
                # leaves both the list and the timer, which fires again after its lease.
                pipe.watch(held_key)
                held = dict(_held(text(i)) for i in pipe.lrange(held_key, 0, -1))
                records = [rec for rec in (store.load(r, school_id, i) for i in held) if rec is not None]
                # Acknowledged meanwhile (by the duty leader, the backup): nothing left to do for the owner,
                # but the homeroom teacher still wants to know who is absent.
                waiting = [rec for rec in records if rec.status is Status.received
                           or (held[rec.id] and rec.status is not Status.resolved)]
                pipe.multi()
                pipe.delete(held_key)
                disarm(pipe, school_id, digest_timer(staff_id))
                if waiting:
                    _queue_digest(pipe, runtime, school_id, staff_id, waiting)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    if not waiting:
        return "empty"
    log.info("digest_queued", school_id=school_id, staff_id=staff_id, count=len(waiting))
    return "queued"


def _queue_digest(pipe: Any, runtime: Runtime, school_id: str, staff_id: str, waiting: list[RequestRecord]) -> None:
    # Grouped by class, in the order the classes first appear: the teacher reads the roll class by class.
    by_class: dict[str, list[RequestRecord]] = {}
    for rec in waiting:
        by_class.setdefault(rec.class_id, []).append(rec)
    ordered = [rec for group in by_class.values() for rec in group]
    first = ordered[0]
    eid = event_id(first.id, Event.digest, int(clock.now()), staff_id)
    deliveries.queue(pipe, runtime, deliveries.new(first, eid, Event.digest, "digest", staff_id=staff_id,
                                                   request_ids=[rec.id for rec in ordered],
                                                   by_class={c: len(g) for c, g in by_class.items()}))
    for rec in ordered:
        add_timeline(pipe, rec, "digest_sent", now_in(rec), to=staff_id, event_id=eid)


# --- outbreaks: contagious reports from one class, grouped for the nurse and the principal --


def track_outbreak(pipe: Any, school: School, record: RequestRecord) -> bool:
    """At intake, inside its MULTI: count a contagious report. Returns whether the report counts;
    the pipeline's last two replies are then the class's count within the window and whether
    the class was already alerted in it."""
    if record.category not in ("medical", "attendance") or not is_contagious(record.text):
        return False
    now = clock.now()
    key = keys.outbreak(record.school_id, record.class_id)
    pipe.zadd(key, {record.id: now})
    pipe.zremrangebyscore(key, 0, now - school.outbreak_window.seconds)
    pipe.expire(key, int(school.outbreak_window.seconds) + 60)
    pipe.zcard(key)
    pipe.exists(keys.outbreak_alerted(record.school_id, record.class_id))
    return True


def outbreak_reached(runtime: Runtime, school: School, record: RequestRecord, count: int, alerted: bool) -> None:
    """After intake's EXEC: at the threshold, a job sends the grouped alert (once per window)."""
    if count >= school.outbreak_threshold and not alerted:
        runtime.queues["urgent"].enqueue("relay.core.sla.outbreak_check", record.school_id, record.class_id,
                                         result_ttl=0, failure_ttl=86400)


def outbreak_check(school_id: str, class_id: str) -> str:
    runtime = get_runtime()
    r = runtime.redis
    current = runtime.directories.school(school_id)
    if current is None:
        return "unknown"
    school = current[1]
    window = school.outbreak_window.seconds
    now = clock.now()
    key = keys.outbreak(school_id, class_id)
    r.zremrangebyscore(key, 0, now - window)
    ids = [text(i) for i in r.zrange(key, 0, -1)]
    if len(ids) < school.outbreak_threshold:
        return "below"
    record = store.load(r, school_id, ids[-1])
    if record is None:
        return "unknown"
    targets = [s.id for role in (Role.nurse, Role.principal) for s in school.with_role(role)]
    # With a roll call, an outbreak found while the school is closed rides the nurse's and the principal's
    # roll-call digest (its reports, grouped by class) instead of paging them before school.
    held = held_until(school, SchoolCalendar(school), dt.datetime.fromtimestamp(now, school.zone))
    alerted = keys.outbreak_alerted(school_id, class_id)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                # One grouped alert per class per window: the mark and the alert are written in one EXEC,
                # so a worker killed in between cannot leave the class marked as told and nobody told.
                pipe.watch(alerted)
                if pipe.exists(alerted):
                    pipe.unwatch()
                    return "already"
                pipe.multi()
                pipe.set(alerted, len(ids), ex=int(window))
                symptom = contagious_kind(record.text) or "症状"
                for staff_id in targets:
                    if held is not None:
                        _hold_ids(pipe, school_id, ids, staff_id, held)
                    else:
                        queue_notice(pipe, runtime, record, staff_id, "outbreak", Event.outbreak, int(now),
                                     count=len(ids), window_s=window, symptom=symptom)
                add_timeline(pipe, record, "outbreak_alert", now_in(record), count=len(ids), notify=targets,
                             **({"held_until": held.isoformat()} if held is not None else {}))
                pipe.execute()
                break
            except redis.WatchError:
                continue
    metrics.outbreak_alert()
    log.info("outbreak_alert", school_id=school_id, class_id=class_id, count=len(ids))
    return "alerted"
