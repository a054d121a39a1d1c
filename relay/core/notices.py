"""Notifications: who is told what, queued with the request in one transaction, worded for each channel.

An event id is derived from the request, the event, the step and the recipient, so the
same notification can never be created twice: a duplicate timer firing finds its
delivery record already there.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Unpack

import redis
from redis.client import Pipeline

from adapters.base import Message
from relay.base import keys, links
from relay.base.runtime import Runtime
from relay.base.store import RequestRecord
from relay.core import deliveries
from relay.core.deliveries import GUARDIAN, Delivery, Extras
from relay.core.deliveries import (
    event_id as event_id,  # its home was here: callers and tests import it from here
)
from relay.core.masking import redact
from relay.core.notice_events import EVENTS, Event, Wording
from routing.directory import School
from routing.labels import CATEGORY_WORDS, URGENCY_WORDS, Category, Urgency


def queue_notice(
    pipe: Pipeline,
    runtime: Runtime,
    record: RequestRecord,
    staff_id: str,
    why: str,
    event: Event,
    step: int = 0,
    actor: str | None = None,
    **extra: Unpack[Extras],
) -> str | None:
    """Queue one notification on a pipeline already in MULTI: its record, its watchdog timer, its job.

    `actor` is the staff member whose action this notice follows from: they are never told what they did
    themselves (the page or link where they acted says so), and None is returned."""
    if actor is not None and staff_id == actor:
        return None
    eid = event_id(record.id, event, step, staff_id)
    return deliveries.queue(pipe, runtime, deliveries.new(record, eid, event, why, staff_id=staff_id, **extra))


def parent_channel_on(runtime: Runtime) -> bool:
    """Whether parents can be told at all: the mini-program channel set up, or the dev outbox on."""
    return runtime.channels.get("miniprogram") is not None or runtime.settings.dev_outbox


def parent_can_hear(connection: redis.Redis, runtime: Runtime, record: RequestRecord) -> bool:
    """Whether the request's guardian gets status messages: bound in WeChat (their openid is kept) and the
    mini-program channel set up, or the dev outbox on.

    A plain read on `connection`: give it a connection or a pipeline that is not in MULTI (a queued read
    would answer nothing), e.g. the runtime's connection before or beside the caller's transaction. A
    binding made meanwhile is not missed for long: the next status message finds it."""
    if not parent_channel_on(runtime):
        return False
    if isinstance(connection, Pipeline) and connection.explicit_transaction:
        raise ValueError("parent_can_hear reads: not on a pipeline in MULTI")
    return bool(connection.exists(keys.guardian_openid(record.school_id, record.guardian_id)))


def queue_parent_notice(
    pipe: Pipeline, runtime: Runtime, record: RequestRecord, event: Event, step: int = 0, **extra: Unpack[Extras],
) -> str:
    """Queue a status message to the request's guardian on a pipeline already in MULTI (see parent_can_hear).

    The job reads the openid when it sends, so the delivery record holds only the guardian id; there is
    one contact (the mini-program) and no fallback, and an acknowledgement never cancels it."""
    if not EVENTS[event].for_parent:
        raise ValueError(f"{event} is not a parent's event")
    eid = event_id(record.id, event, step, f"{GUARDIAN}-{record.guardian_id}")
    delivery = deliveries.new(record, eid, event, GUARDIAN, guardian_id=record.guardian_id, **extra)
    return deliveries.queue(pipe, runtime, delivery)


# Alibaba Cloud refuses an SMS whose template variable is longer than this (isv.PARAM_LENGTH_LIMIT).
SMS_VARIABLE_MAX = 35
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, variation selectors


def sms_variable(value: str, limit: int = SMS_VARIABLE_MAX) -> str:
    """A template variable cut to `limit` characters, ending with "…" when cut; never a dangling accent."""
    if len(value) <= limit:
        return value
    cut = limit - 1
    # Cut before a whole character: not between a letter and its accent, nor inside a joined emoji.
    while cut > 0 and (unicodedata.combining(value[cut]) or value[cut] in _JOINERS or value[cut - 1] in _JOINERS):
        cut -= 1
    return value[:cut].rstrip() + "…"


def masked_name(name: str) -> str:
    """张小明 → 张同学: enough for a nurse to find the child, nothing more on an SMS."""
    return (name[:1] + "同学") if name else "学生"


EXCERPT_CHARS = 40  # a WeCom card's description holds 512 bytes: the parent's first words, not the letter

# What the person is asked to do, by event; an alert that an acknowledgement stops asks for the tap.
_TO_DO: dict[Event, str] = {
    Event.fyi: "仅供知悉，无需操作。",
    Event.ack_confirmed: "请尽快处理，并回复家长。",
    Event.reminder: "请更新处理进展，或办结并回复家长。",
    Event.parent_update: "家长又发来消息，请打开查看。",
    Event.follow_up: "家长在该请求中补充了消息，请打开查看并回复。",
    Event.reassigned: "已转交给您，请打开查看并处理。",
    Event.digest: "请打开待处理队列逐条处理。",
    Event.outbreak: "请关注该班学生情况，必要时通知家长。",
}
_ACT_NOW: dict[Category, str] = {
    Category.medical: "请立即前往查看学生，并点击确认接收。",
    Category.safety: "请立即到场处置，并点击确认接收。",
}


def what_to_do(record: RequestRecord, event: Event) -> str:
    """One sentence: what the recipient should do now, in the school's words."""
    if event in _TO_DO:
        return _TO_DO[event]
    if record.urgency == Urgency.P0:
        return _ACT_NOW.get(Category(record.category), "请立即处理，并点击确认接收。")
    if record.urgency == Urgency.P1:
        return "请今天内处理，并点击确认接收。"
    return "请在截止时间前处理，点击查看。"


def excerpt(school: School, record: RequestRecord, limit: int = EXCERPT_CHARS) -> str:
    """The parent's first words with the names the directory knows and anything like a phone number masked
    ("家长：孩子发烧39度，头很痛…"): a WeCom card shows it so the nurse knows what to bring."""
    text = " ".join(redact(record.text, school, record).split())
    return "家长：" + (text if len(text) <= limit else text[: limit - 1].rstrip() + "…")


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


def _parent_message(
    runtime: Runtime, school: School, record: RequestRecord, delivery: Delivery, attempt: int, sent_at: str
) -> Message:
    """A status message for the parent: short (a subscribe message's fields hold 20 characters), the
    owner by name, no staff link; the mini-program page and the status page show the rest."""
    student = school.student(record.student_id)
    guardian = school.guardian(record.guardian_id)
    owner = school.staff_member(str(delivery.owner_id or record.owner or ""))
    category_word = CATEGORY_WORDS[Category(record.category)]
    kind = EVENTS[delivery.event]
    title = f"{masked_name(student.name if student else '')} {category_word}"
    body = kind.words(Wording(delivery, owner=owner.name if owner else "老师", eta_text=record.eta_text))
    link = f"{runtime.settings.public_url.rstrip('/')}/p/r/{record.id}"
    return Message(
        event=delivery.event.value,
        event_id=delivery.event_id,
        attempt=attempt,
        sent_at=sent_at,
        urgency=record.urgency,
        title=title,
        body=body,
        link=link,
        status=kind.parent_status,
        recipient={"id": record.guardian_id, "name": guardian.name if guardian else "", "role": GUARDIAN},
        request={"id": record.id, "status": record.status.value, "owner": record.owner},
    )


def _classes(school: School, by_class: dict[str, int] | None) -> str:
    """A digest's requests by class, in its order: "三年级2班 3 条、三年级1班 1 条"."""
    if not by_class:
        return ""
    named = [(found.name if (found := school.school_class(c)) else c, n) for c, n in by_class.items()]
    return "、".join(f"{name} {n} 条" for name, n in named)


def build_message(
    runtime: Runtime, school: School, record: RequestRecord, delivery: Delivery, attempt: int, sent_at: str
) -> Message:
    if delivery.for_guardian:
        return _parent_message(runtime, school, record, delivery, attempt, sent_at)
    staff_id = delivery.recipient_id
    staff = school.staff_member(staff_id)
    student = school.student(record.student_id)
    school_class = school.school_class(record.class_id)
    class_name = school_class.name if school_class else record.class_id
    student_word = masked_name(student.name if student else "")
    category_word = CATEGORY_WORDS[Category(record.category)]
    urgency_word = URGENCY_WORDS[Urgency(record.urgency)]
    code = links.issue(runtime.redis, runtime.settings, record.school_id, record.id, staff_id, delivery.event_id)
    link = links.url_for(runtime.settings, code)
    kind = EVENTS[delivery.event]
    # The one line every channel shows; no diagnosis and no full name (SMS and IM are not private).
    title = kind.words(Wording(delivery, summary=f"{class_name} {student_word} {category_word}（{urgency_word}）",
                               class_name=class_name, escalation_step=record.escalation_step,
                               classes=_classes(school, delivery.by_class)))
    # The title is shown once by every channel; the body says what to do, and the link is the card's button
    # (a channel that can only print text puts the link last).
    body = what_to_do(record, delivery.event)
    return Message(
        event=delivery.event.value,
        event_id=delivery.event_id,
        attempt=attempt,
        sent_at=sent_at,
        urgency=record.urgency,
        title=title,
        body=body,
        link=link,
        recipient={"id": staff_id, "name": staff.name if staff else "", "role": delivery.why},
        request=dict(request_document(record, runtime.settings.public_url),
                     **({"digest_request_ids": delivery.request_ids} if delivery.request_ids is not None else {})),
        # The SMS template holds the fixed RELAY_PUBLIC_URL/a/ part: its last variable carries the code.
        sms_params=tuple(sms_variable(v) for v in (class_name, student_word, category_word, code)),
        excerpt="" if delivery.event in (Event.digest, Event.outbreak) else excerpt(school, record),
    )
