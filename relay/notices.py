"""Notifications: who is told what, queued with the request in one transaction, worded for each channel.

An event id is derived from the request, the event, the step and the recipient, so the
same notification can never be created twice: a duplicate timer firing finds its
delivery record already there.
"""

from __future__ import annotations

import json
from typing import Any

from redis.client import Pipeline
from rq import Queue

from adapters.base import Message
from relay import clock, keys, links
from relay.enqueue import enqueue
from relay.runtime import Runtime
from relay.store import RequestRecord
from relay.timers import arm, deliver_timer
from routing.directory import School
from routing.labels import CATEGORY_WORDS, URGENCY_WORDS, Category, Urgency

# Events that an acknowledgement makes pointless: none of them goes out after an ack.
STOPPED_BY_ACK = {"request.urgent", "request.created", "request.escalated"}
# What a parent hears about their own request (mini-program subscribe messages): received, who has it, answered.
PARENT_EVENTS = ("request.received", "request.assigned", "request.answered")
GUARDIAN = "guardian"  # a delivery's `recipient`; without one it is a staff member


def event_id(request_id: str, event: str, step: int, staff_id: str) -> str:
    return f"{request_id}.{event.removeprefix('request.')}.{step}.{staff_id}"


def queue_notice(
    pipe: Pipeline,
    runtime: Runtime,
    record: RequestRecord,
    staff_id: str,
    why: str,
    event: str,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> str:
    """Queue one notification on a pipeline already in MULTI: its record, its watchdog timer, its job."""
    eid = event_id(record.id, event, step, staff_id)
    return _queue(pipe, runtime, record, eid, {"staff_id": staff_id}, why, event, extra)


def _queue(
    pipe: Pipeline,
    runtime: Runtime,
    record: RequestRecord,
    eid: str,
    recipient: dict[str, Any],
    why: str,
    event: str,
    extra: dict[str, Any] | None,
) -> str:
    delivery = {
        "event_id": eid,
        "school_id": record.school_id,
        "request_id": record.id,
        **recipient,
        "why": why,
        "event": event,
        "urgency": record.urgency,
        "contact_index": 0,
        "attempt": 0,
        "state": "pending",
        "created_at": clock.now(),
        **(extra or {}),
    }
    pipe.set(keys.delivery(record.school_id, eid), json.dumps(delivery), nx=True, ex=30 * 86400)
    # The watchdog: if no worker finishes this delivery within the lease, the timer hands it to another.
    arm(pipe, record.school_id, deliver_timer(eid), clock.now() + runtime.settings.delivery_lease_seconds)
    enqueue_delivery(pipe, runtime.queue_for(record.urgency), record.school_id, eid)
    return eid


def is_for_guardian(delivery: dict[str, Any]) -> bool:
    return delivery.get("recipient") == GUARDIAN


def recipient_id(delivery: dict[str, Any]) -> str:
    """Whom a delivery is for: the staff id, or the guardian id of a parent notice."""
    return str(delivery["guardian_id"] if is_for_guardian(delivery) else delivery["staff_id"])


def parent_channel_on(runtime: Runtime) -> bool:
    """Whether parents can be told at all: the mini-program channel set up, or the dev outbox on."""
    return runtime.channels.get("miniprogram") is not None or runtime.settings.dev_outbox


def parent_can_hear(runtime: Runtime, record: RequestRecord) -> bool:
    """Whether the request's guardian gets status messages: bound in WeChat (their openid is kept) and the
    mini-program channel set up, or the dev outbox on. Read outside any MULTI, before the caller's transaction."""
    if not parent_channel_on(runtime):
        return False
    return bool(runtime.redis.exists(keys.guardian_openid(record.school_id, record.guardian_id)))


def queue_parent_notice(
    pipe: Pipeline, runtime: Runtime, record: RequestRecord, event: str, step: int = 0,
    extra: dict[str, Any] | None = None,
) -> str:
    """Queue a status message to the request's guardian on a pipeline already in MULTI (see parent_can_hear).

    The job reads the openid when it sends, so the delivery record holds only the guardian id; there is
    one contact (the mini-program) and no fallback, and an acknowledgement never cancels it."""
    eid = event_id(record.id, event, step, f"{GUARDIAN}-{record.guardian_id}")
    recipient = {"recipient": GUARDIAN, "guardian_id": record.guardian_id}
    return _queue(pipe, runtime, record, eid, recipient, GUARDIAN, event, extra)


# How long a queued delivery job is trusted to be waiting its turn. Past it (a job lost between a
# worker's pop and its start), the watchdog queues the delivery again.
QUEUED_TTL_SECONDS = 120


def enqueue_delivery(pipe: Pipeline | None, queue: Queue, school: str, eid: str) -> None:
    writes = pipe if pipe is not None else queue.connection.pipeline()
    writes.set(keys.delivery_queued(school, eid), 1, ex=QUEUED_TTL_SECONDS)
    # RQ's job for relay.jobs.deliver, without an RQ Job object per recipient (relay/enqueue.py).
    enqueue(writes, queue, "relay.jobs.deliver", (school, eid), timeout=60, result_ttl=0, failure_ttl=86400)
    if pipe is None:
        writes.execute()


def masked_name(name: str) -> str:
    """张小明 → 张同学: enough for a nurse to find the child, nothing more on an SMS."""
    return (name[:1] + "同学") if name else "学生"


def request_document(record: RequestRecord, public_url: str) -> dict[str, Any]:
    """The request as machine receivers (webhook) get it."""
    return {
        "id": record.id,
        "school_id": record.school_id,
        "urgency": record.urgency,
        "category": record.category,
        "student_id": record.student_id,
        "class_id": record.class_id,
        "text": record.text,
        "status": record.status.value,
        "owner": record.owner,
        "ack_due_at": record.ack_due_at,
        "resolve_due_at": record.resolve_due_at,
        "escalation_step": record.escalation_step,
        "created_at": record.created_at,
        "status_url": f"{public_url.rstrip('/')}/staff/requests/{record.id}",
    }


def _title(event: str, delivery: dict[str, Any], record: RequestRecord, summary: str, class_name: str) -> str:
    """The one line every channel shows; no diagnosis and no full name (SMS and IM are not private)."""
    if event == "request.escalated":
        return f"【升级·第{record.escalation_step}级】{summary}"
    if event == "request.fyi":
        return f"【知悉】{summary}"
    if event == "request.ack_confirmed":
        return f"已确认，由您处理：{summary}"
    if event == "request.reminder":
        return f"【提醒】已确认的请求尚无进展：{summary}"
    if event == "request.parent_update":
        return f"【家长补充·紧急】{summary}"
    if event == "request.reassigned":
        return f"【转交给您】{summary}"
    if event == "request.digest":
        return f"【今日待处理】{len(delivery.get('request_ids', [])) or 1} 条家长请求（非工作时间收到）"
    if event == "request.outbreak":
        minutes = int(delivery.get("window_s", 3600)) // 60
        window = f"{minutes // 60}小时" if minutes % 60 == 0 else f"{minutes}分钟"
        return f"【聚集性提示】{class_name} {window}内 {delivery.get('count', 0)} 例{delivery.get('symptom', '症状')}"
    return summary


def _parent_message(
    runtime: Runtime, school: School, record: RequestRecord, delivery: dict[str, Any], attempt: int, sent_at: str
) -> Message:
    """A status message for the parent: short (a subscribe message's fields hold 20 characters), the
    owner by name, no staff link; the mini-program page and the status page show the rest."""
    student = school.student(record.student_id)
    guardian = school.guardian(record.guardian_id)
    owner = school.staff_member(str(delivery.get("owner_id") or record.owner or ""))
    owner_word = owner.name if owner else "老师"
    category_word = CATEGORY_WORDS[Category(record.category)]
    event = delivery["event"]
    title = f"{masked_name(student.name if student else '')} {category_word}"
    if event == "request.assigned":
        body = f"{owner_word}已接手" + (f"，{record.eta_text}" if record.eta_text else "")
    elif event == "request.answered":
        body = f"{owner_word}已回复，请查看"
    else:
        body = "学校已收到" + (f"，{record.eta_text}" if record.eta_text else "")
    link = f"{runtime.settings.public_url.rstrip('/')}/p/r/{record.id}"
    return Message(
        event=event,
        event_id=delivery["event_id"],
        attempt=attempt,
        sent_at=sent_at,
        urgency=record.urgency,
        title=title,
        body=body,
        link=link,
        recipient={"id": record.guardian_id, "name": guardian.name if guardian else "", "role": GUARDIAN},
        request={"id": record.id, "status": record.status.value, "owner": record.owner},
    )


def build_message(
    runtime: Runtime, school: School, record: RequestRecord, delivery: dict[str, Any], attempt: int, sent_at: str
) -> Message:
    if is_for_guardian(delivery):
        return _parent_message(runtime, school, record, delivery, attempt, sent_at)
    staff = school.staff_member(delivery["staff_id"])
    student = school.student(record.student_id)
    school_class = school.school_class(record.class_id)
    class_name = school_class.name if school_class else record.class_id
    student_word = masked_name(student.name if student else "")
    category_word = CATEGORY_WORDS[Category(record.category)]
    urgency_word = URGENCY_WORDS[Urgency(record.urgency)]
    link = links.ack_link(runtime.settings, record.school_id, record.id, delivery["staff_id"])
    event = delivery["event"]
    title = _title(event, delivery, record, f"{class_name} {student_word} {category_word}（{urgency_word}）", class_name)
    body = f"{title} 请点击确认 {link}" if event in STOPPED_BY_ACK else f"{title} {link}"
    return Message(
        event=event,
        event_id=delivery["event_id"],
        attempt=attempt,
        sent_at=sent_at,
        urgency=record.urgency,
        title=title,
        body=body,
        link=link,
        recipient={"id": delivery["staff_id"], "name": staff.name if staff else "", "role": delivery["why"]},
        request=dict(request_document(record, runtime.settings.public_url),
                     **({"digest_request_ids": delivery["request_ids"]} if "request_ids" in delivery else {})),
        sms_params=(class_name, student_word, category_word, link),
    )
