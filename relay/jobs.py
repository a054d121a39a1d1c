"""RQ job functions: deliver one notification, take one escalation step.

Both are safe to run twice: they read the current state and act only if it still
calls for it, writing their result in one transaction with the timer they answer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from typing import Any

import redis

from adapters.base import Outcome, Reason, Result, backoff
from relay import clock, keys, metrics
from relay.log import log
from relay.notices import (
    QUEUED_TTL_SECONDS,
    STOPPED_BY_ACK,
    build_message,
    enqueue_delivery,
    is_for_guardian,
    queue_notice,
    recipient_id,
)
from relay.runtime import Runtime, get_runtime
from relay.sla import arm_fallback
from relay.store import RequestRecord, add_timeline, load, now_in, text, transition
from relay.timers import arm, deliver_timer, disarm, escalate_timer
from routing.directory import School

FINAL = ("delivered", "failed", "cancelled")


def _save_delivery(pipe: redis.Redis | Any, school: str, delivery: dict[str, Any]) -> None:
    pipe.set(keys.delivery(school, delivery["event_id"]), json.dumps(delivery), ex=30 * 86400)


def deliver(school_id: str, event_id: str) -> str:
    runtime = get_runtime()
    r = runtime.redis
    lease = runtime.settings.delivery_lease_seconds
    lock = keys.delivery_lock(school_id, event_id)
    # One round trip before sending. The lock keeps a delivery to one sender at a time (under a
    # backlog the watchdog may queue a second job for a delivery that only waits its turn); it
    # expires with the lease should we die, and the re-armed watchdog then hands it to another worker.
    with r.pipeline(transaction=False) as pipe:
        pipe.set(lock, os.getpid(), nx=True, px=int(lease * 1000))
        pipe.get(keys.delivery(school_id, event_id))
        pipe.get(keys.request(school_id, event_id.split(".", 1)[0]))
        arm(pipe, school_id, deliver_timer(event_id), clock.now() + lease)
        pipe.delete(keys.delivery_queued(school_id, event_id))  # out of the queue now
        locked, raw, raw_request, _, _ = pipe.execute()
    if not locked:
        return "busy"
    try:
        return _deliver_locked(runtime, school_id, event_id, raw, raw_request)
    finally:
        r.delete(lock)


def _deliver_locked(
    runtime: Runtime, school_id: str, event_id: str, raw: bytes | None, raw_request: bytes | None
) -> str:
    r = runtime.redis
    delivery = json.loads(raw) if raw else None
    if delivery is None or delivery["state"] in FINAL:
        disarm(r, school_id, deliver_timer(event_id))
        return delivery["state"] if delivery else "unknown"
    record = RequestRecord.model_validate_json(raw_request) if raw_request else None
    if record is None or record.id != delivery["request_id"]:
        record = load(r, school_id, delivery["request_id"])
    current = runtime.directories.school(school_id)
    if record is not None and (current is None or current[0] < record.directory_version):
        # Planned against a directory published in the last second: this process's view is behind, not wrong.
        runtime.directories.reload()
        current = runtime.directories.school(school_id)
    if record is None or current is None:
        return _finish(runtime, school_id, delivery, None, "cancelled", "request or school gone")
    school = current[1]
    if delivery["event"] in STOPPED_BY_ACK and record.acknowledged:
        return _finish(runtime, school_id, delivery, record, "cancelled", "acknowledged")

    if is_for_guardian(delivery):
        # A parent has one contact, the mini-program, addressed to the openid of their latest binding.
        openid = r.get(keys.guardian_openid(school_id, delivery["guardian_id"]))
        if not openid:
            return _finish(runtime, school_id, delivery, record, "cancelled", "guardian not bound")
        channel_name, address = "miniprogram", {"openid": text(openid)}
    else:
        staff = school.staff_member(delivery["staff_id"])
        contacts = staff.contacts if staff else ()
        if delivery["contact_index"] >= len(contacts):
            return _finish(runtime, school_id, delivery, record, "failed", "no contact left")
        contact = contacts[delivery["contact_index"]]
        channel_name, address = contact.channel.value, dict(contact.address())
    # The attempt is counted now and saved with the outcome; a send cut short by a crash is not counted.
    attempt = delivery["attempt"] + 1
    delivery["attempt"] = attempt

    sent_at = now_in(record)
    message = build_message(runtime, school, record, delivery, attempt, sent_at)
    channel = runtime.channels.get(channel_name)
    started = time.monotonic()
    if channel is None and runtime.settings.dev_outbox:
        result = _to_outbox(r, school_id, channel_name, message)
    elif channel is None:
        result = Result(Outcome.permanent, Reason.not_configured, None, f"{channel_name} not configured")
    else:
        result = channel.send(message, address)
    metrics.delivery_attempt(channel_name, result.outcome.value)
    log.info(
        "delivery_attempt",
        request_id=record.id,
        school_id=school_id,
        event_id=event_id,
        channel=channel_name,
        attempt=attempt,
        outcome=result.outcome.value,
        reason=result.reason.value,
        vendor_code=result.vendor_code,
        ms=round((time.monotonic() - started) * 1000, 1),
    )
    return _after_send(runtime, school, record, delivery, channel_name, result)


def _to_outbox(r: redis.Redis, school_id: str, channel: str, message: Any) -> Result:
    entry = {
        "channel": channel,
        "event": message.event,
        "event_id": message.event_id,
        "urgency": message.urgency,
        "recipient": dict(message.recipient),
        "title": message.title,
        "body": message.body,
        "link": message.link,
        "sent_at": message.sent_at,
    }
    with r.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.outbox(school_id), json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(keys.outbox(school_id), 0, 499)
        pipe.execute()
    return Result(Outcome.delivered, Reason.ok, "dev-outbox")


def _after_send(
    runtime: Runtime, school: School, record: RequestRecord, delivery: dict[str, Any], channel: str, result: Result
) -> str:
    settings = runtime.settings
    school_id = school.id
    base = {"event_id": delivery["event_id"], "to": recipient_id(delivery), "channel": channel,
            "attempt": delivery["attempt"], "vendor_code": result.vendor_code}
    if result.outcome is Outcome.delivered:
        if delivery["event"] in ("request.urgent", "request.created"):
            metrics.first_delivery(record.urgency, clock.now() - dt.datetime.fromisoformat(record.created_at).timestamp())
        return _finish(runtime, school_id, delivery, record, "delivered", None, channel=channel,
                       then=lambda pipe: arm_fallback(pipe, runtime, school, record, delivery))
    staff = None if is_for_guardian(delivery) else school.staff_member(delivery["staff_id"])
    contacts = staff.contacts if staff else ()
    if result.outcome is Outcome.retry and delivery["attempt"] < settings.retry_max_attempts:
        wait = result.retry_after or backoff(delivery["attempt"], settings.retry_base_seconds, settings.retry_cap_seconds)
        with runtime.redis.pipeline(transaction=True) as pipe:
            _save_delivery(pipe, school_id, delivery)
            arm(pipe, school_id, deliver_timer(delivery["event_id"]), clock.now() + wait)
            add_timeline(pipe, record, "delivery_retry", now_in(record), reason=result.reason.value,
                         retry_in_s=round(wait, 1), **base)
            pipe.execute()
        return "retry"
    if delivery["contact_index"] + 1 < len(contacts):
        # This channel will not carry it: the person's next contact is tried at once.
        delivery["contact_index"] += 1
        delivery["attempt"] = 0
        with runtime.redis.pipeline(transaction=True) as pipe:
            _save_delivery(pipe, school_id, delivery)
            add_timeline(pipe, record, "delivery_fallback", now_in(record), reason=result.reason.value,
                         next_channel=contacts[delivery["contact_index"]].channel.value, **base)
            arm(pipe, school_id, deliver_timer(delivery["event_id"]), clock.now() + settings.delivery_lease_seconds)
            enqueue_delivery(pipe, runtime.queue_for(record.urgency), school_id, delivery["event_id"])
            pipe.execute()
        return "fallback"
    return _finish(runtime, school_id, delivery, record, "failed", result.reason.value, channel=channel,
                   vendor_code=result.vendor_code)


def _finish(
    runtime: Runtime,
    school_id: str,
    delivery: dict[str, Any],
    record: RequestRecord | None,
    state: str,
    reason: str | None,
    then: Callable[[Any], None] | None = None,
    **detail: Any,
) -> str:
    delivery["state"] = state
    with runtime.redis.pipeline(transaction=True) as pipe:
        if then is not None:
            then(pipe)
        _save_delivery(pipe, school_id, delivery)
        disarm(pipe, school_id, deliver_timer(delivery["event_id"]))
        if record is not None:
            kind = {"delivered": "delivered", "failed": "delivery_failed", "cancelled": "delivery_cancelled"}[state]
            add_timeline(pipe, record, kind, now_in(record), event_id=delivery["event_id"], to=recipient_id(delivery),
                         attempt=delivery["attempt"], reason=reason, **detail)
        # A parent who did not subscribe (43101) or unfollowed is a fact for the timeline, not an operator's task.
        quiet = is_for_guardian(delivery) and reason == Reason.recipient.value
        if state == "failed" and not quiet:
            pipe.lpush(keys.dead_letters(school_id), json.dumps(delivery))
            metrics.dead_letter(delivery.get("urgency", "P2"))
        pipe.execute()
    return state


def escalate(school_id: str, request_id: str, step: int) -> str:
    """Take escalation step `step` if the request is still unacknowledged and at step - 1."""
    runtime = get_runtime()
    timer_id = escalate_timer(request_id, step)

    def change(record: RequestRecord, pipe: Any) -> str:
        if record.acknowledged or record.escalation_step != step - 1 or step > len(record.escalation):
            disarm(pipe, school_id, timer_id)
            return "stale"
        planned = record.escalation[step - 1]
        due_s = dt.datetime.fromisoformat(planned.due_at).timestamp()
        if clock.now() < due_s:
            # A firing claimed before a re-triage re-planned the chain: never early, wait for the new time.
            arm(pipe, school_id, timer_id, due_s)
            return "early"
        record.escalation_step = step
        add_timeline(pipe, record, "escalated", now_in(record), step=step, notify=planned.notify)
        for staff_id in planned.notify:
            queue_notice(pipe, runtime, record, staff_id, "escalation", "request.escalated", step)
        disarm(pipe, school_id, timer_id)
        if step < len(record.escalation):
            nxt = record.escalation[step]
            arm(pipe, school_id, escalate_timer(request_id, step + 1), dt.datetime.fromisoformat(nxt.due_at).timestamp())
        return "escalated"

    done = transition(runtime.redis, school_id, request_id, change)
    if done is None:
        disarm(runtime.redis, school_id, timer_id)
        return "unknown"
    if done[1] == "escalated":
        metrics.escalation_step(step)
        log.info("escalated", request_id=request_id, school_id=school_id, step=step)
    return done[1]


def escalate_on_timer(school_id: str, rest: str) -> str:
    request_id, _, step = rest.rpartition("|")
    return escalate(school_id, request_id, int(step))


def watchdog(school_id: str, event_id: str) -> str:
    """The `deliver|<event_id>` timer, run by the scheduler as it claims it: queue the delivery again.

    A delivery whose job still waits in the queue is not queued again: under a backlog that would
    feed the backlog (each watchdog firing adding a job). A dead worker's delivery has no marker
    (a job clears it as it starts), so it is queued at once."""
    runtime = get_runtime()
    if not runtime.redis.set(keys.delivery_queued(school_id, event_id), 1, nx=True, ex=QUEUED_TTL_SECONDS):
        return "waiting"
    enqueue_delivery(None, runtime.queue_for(_urgency_of_event(runtime, school_id, event_id)), school_id, event_id)
    return "queued"


def _urgency_of_event(runtime: Runtime, school_id: str, event_id: str) -> str:
    raw = runtime.redis.get(keys.delivery(school_id, event_id))
    return json.loads(raw).get("urgency", "P2") if raw else "P2"
