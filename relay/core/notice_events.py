"""The notification events, in one table: each one's words, whether an acknowledgement stops it, the parent's status word.

An event's name is on the wire (the webhook's `event`) and inside every event id
(`<request>.<name without "request.">.<step>.<recipient>`), so the names never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.core.deliveries import Delivery


class Event(StrEnum):
    # To staff
    urgent = "request.urgent"  # a P0 at intake (or raised to P0)
    created = "request.created"  # any other request at intake
    escalated = "request.escalated"  # an unacknowledged request's next escalation step
    fyi = "request.fyi"  # the homeroom teacher, for their information
    # "已确认，由您处理": no longer sent (the page or link where one acted says so; channels carry only what
    # someone else did or what is due). Kept so that deliveries stored before still load and read.
    ack_confirmed = "request.ack_confirmed"
    reminder = "request.reminder"  # an acknowledged P0 with no update
    parent_update = "request.parent_update"  # the guardian wrote again about their open emergency
    follow_up = "request.follow_up"  # the guardian answered in the request's thread (POST .../follow-up)
    reassigned = "request.reassigned"
    digest = "request.digest"  # the morning digest of what came in out of hours
    outbreak = "request.outbreak"  # contagious reports grouped for the nurse and the principal
    # To the guardian (mini-program subscribe messages)
    received = "request.received"
    assigned = "request.assigned"
    answered = "request.answered"


@dataclass(frozen=True)
class Wording:
    """What an event's words are made of. `summary` is the staff line ("三年级2班 张同学 身体不适（紧急）");
    `owner` and `eta_text` serve the parent's line."""

    delivery: Delivery
    summary: str = ""
    class_name: str = ""
    escalation_step: int = 0
    owner: str = "老师"
    eta_text: str = ""
    classes: str = ""  # a digest: its requests by class ("三年级2班 3 条、三年级1班 1 条")


@dataclass(frozen=True)
class EventKind:
    words: Callable[[Wording], str]  # staff: the one-line title every channel shows; parent: the message's line
    stopped_by_ack: bool = False  # pointless once someone has acknowledged: never goes out after an ack
    first_alert: bool = False  # the first page about a request: its delay is the relay's promise (a metric)
    parent_status: str | None = None  # a parent event: the status word the mini-program shows (5 characters)

    @property
    def for_parent(self) -> bool:
        return self.parent_status is not None


def _outbreak(w: Wording) -> str:
    d = w.delivery
    minutes = int(d.window_s or 3600) // 60
    window = f"{minutes // 60}小时" if minutes % 60 == 0 else f"{minutes}分钟"
    return f"【聚集性提示】{w.class_name} {window}内 {d.count or 0} 例{d.symptom or '症状'}"


def _eta(w: Wording) -> str:
    return f"，{w.eta_text}" if w.eta_text else ""


EVENTS: dict[Event, EventKind] = {
    Event.urgent: EventKind(lambda w: w.summary, stopped_by_ack=True, first_alert=True),
    Event.created: EventKind(lambda w: w.summary, stopped_by_ack=True, first_alert=True),
    Event.escalated: EventKind(lambda w: f"【升级·第{w.escalation_step}级】{w.summary}", stopped_by_ack=True),
    Event.fyi: EventKind(lambda w: f"【知悉】{w.summary}"),
    Event.ack_confirmed: EventKind(lambda w: f"已确认，由您处理：{w.summary}"),
    Event.reminder: EventKind(lambda w: f"【提醒】已确认的请求尚无进展：{w.summary}"),
    Event.parent_update: EventKind(lambda w: f"【家长补充·紧急】{w.summary}"),
    Event.follow_up: EventKind(lambda w: f"【家长追问】{w.summary}"),
    Event.reassigned: EventKind(lambda w: f"【转交给您】{w.summary}"),
    Event.digest: EventKind(
        lambda w: f"【今日待处理】{len(w.delivery.request_ids or ()) or 1} 条家长请求（非工作时间收到）"
                  + (f"：{w.classes}" if w.classes else "")),
    Event.outbreak: EventKind(_outbreak),
    Event.received: EventKind(lambda w: "学校已收到" + _eta(w), parent_status="已受理"),
    Event.assigned: EventKind(lambda w: f"{w.owner}已接手" + _eta(w), parent_status="已分配"),
    Event.answered: EventKind(lambda w: f"{w.owner}已回复，请查看", parent_status="已回复"),
}
