"""RQ job functions: deliver one notification, take one escalation step.

Both are safe to run twice: they read the current state and act only if it still
calls for it, writing their result in one transaction with the timer they answer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

from adapters.base import Outcome, Reason, Result, backoff
from relay.base import clock, keys, metrics
from relay.base.log import log
from relay.base.runtime import Runtime, get_runtime
from relay.base.store import RequestRecord, add_timeline, load, now_in, text, transition
from relay.core import deliveries
from relay.core.deliveries import Delivery, DeliveryState
from relay.core.notice_events import EVENTS, Event
from relay.core.notices import build_message, queue_notice
from relay.core.sla import arm_fallback
from relay.core.timers import arm, deliver_timer, disarm, escalate_timer
from routing.directory import School


def deliver(school_id: str, event_id: str) -> str:
    runtime = get_runtime()
    claimed = deliveries.claim(runtime.redis, school_id, event_id, runtime.settings.delivery_lease_seconds)
    if not claimed.locked:
        return "busy"
    try:
        return _deliver_locked(runtime, school_id, event_id, claimed.delivery, claimed.raw_request)
    finally:
        deliveries.release(runtime.redis, school_id, event_id)


def _deliver_locked(
    runtime: Runtime, school_id: str, event_id: str, delivery: Delivery | None, raw_request: bytes | None
) -> str:
    r = runtime.redis
    if delivery is None or delivery.state.final:
        disarm(r, school_id, deliver_timer(event_id))
        return delivery.state.value if delivery else "unknown"
    record = RequestRecord.model_validate_json(raw_request) if raw_request else None
    if record is None or record.id != delivery.request_id:
        record = load(r, school_id, delivery.request_id)
    current = runtime.directories.school(school_id)
    if record is not None and (current is None or current[0] < record.directory_version):
        # Planned against a directory published in the last second: this process's view is behind, not wrong.
        runtime.directories.reload()
        current = runtime.directories.school(school_id)
    if record is None or current is None:
        return _finish(r, delivery, None, DeliveryState.cancelled, "request or school gone")
    school = current[1]
    if delivery.stopped_by_ack and record.acknowledged:
        return _finish(r, delivery, record, DeliveryState.cancelled, "acknowledged")

    if delivery.for_guardian:
        # A parent has one contact, the mini-program, addressed to the openid of their latest binding.
        openid = r.get(keys.guardian_openid(school_id, delivery.recipient_id))
        if not openid:
            return _finish(r, delivery, record, DeliveryState.cancelled, "guardian not bound")
        channel_name, address = "miniprogram", {"openid": text(openid)}
    else:
        staff = school.staff_member(delivery.recipient_id)
        contacts = staff.contacts if staff else ()
        if delivery.contact_index >= len(contacts):
            return _finish(r, delivery, record, DeliveryState.failed, "no contact left")
        contact = contacts[delivery.contact_index]
        channel_name, address = contact.channel.value, dict(contact.address())
    # The attempt is counted now and saved with the outcome; a send cut short by a crash is not counted.
    attempt = delivery.attempt + 1
    delivery.attempt = attempt

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
    runtime: Runtime, school: School, record: RequestRecord, delivery: Delivery, channel: str, result: Result
) -> str:
    settings = runtime.settings
    base = {"event_id": delivery.event_id, "to": delivery.recipient_id, "channel": channel,
            "attempt": delivery.attempt, "vendor_code": result.vendor_code}
    if result.outcome is Outcome.delivered:
        if EVENTS[delivery.event].first_alert:
            metrics.first_delivery(record.urgency, clock.now() - dt.datetime.fromisoformat(record.created_at).timestamp())
        return _finish(runtime.redis, delivery, record, DeliveryState.delivered, None, channel=channel,
                       then=lambda pipe: arm_fallback(pipe, runtime, school, record, delivery))
    staff = None if delivery.for_guardian else school.staff_member(delivery.recipient_id)
    contacts = staff.contacts if staff else ()
    if result.outcome is Outcome.retry and delivery.attempt < settings.retry_max_attempts:
        wait = result.retry_after or backoff(delivery.attempt, settings.retry_base_seconds, settings.retry_cap_seconds)
        with runtime.redis.pipeline(transaction=True) as pipe:
            deliveries.retry_at(pipe, delivery, clock.now() + wait)
            add_timeline(pipe, record, "delivery_retry", now_in(record), reason=result.reason.value,
                         retry_in_s=round(wait, 1), **base)
            pipe.execute()
        return "retry"
    if delivery.contact_index + 1 < len(contacts):
        # This channel will not carry it: the person's next contact is tried at once.
        delivery.next_contact()
        with runtime.redis.pipeline(transaction=True) as pipe:
            add_timeline(pipe, record, "delivery_fallback", now_in(record), reason=result.reason.value,
                         next_channel=contacts[delivery.contact_index].channel.value, **base)
            deliveries.requeue(pipe, runtime, delivery)
            pipe.execute()
        return "fallback"
    return _finish(runtime.redis, delivery, record, DeliveryState.failed, result.reason.value, channel=channel,
                   vendor_code=result.vendor_code)


def _finish(
    connection: redis.Redis, delivery: Delivery, record: RequestRecord | None, state: DeliveryState,
    reason: str | None, then: Callable[[Pipeline], None] | None = None, **detail: Any,
) -> str:
    return deliveries.finish(connection, delivery, record, state, reason, then, **detail).value


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
            queue_notice(pipe, runtime, record, staff_id, "escalation", Event.escalated, step)
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
    """The `deliver|<event_id>` timer, run by the scheduler as it claims it: queue the delivery again
    unless its job still waits in the queue (relay/core/deliveries.py says why)."""
    return deliveries.watchdog_fired(get_runtime(), school_id, event_id)

