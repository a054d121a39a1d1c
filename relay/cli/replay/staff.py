"""How the school's staff answer in the replay: when, who, and sometimes nobody.

Decided per request at intake from the stored request (urgency, owner, due times, escalation
chain) and a generator seeded with the replay's seed and the message's index, so a replay
is the same every time. Staff work in school hours for P1-P3 (a delay counts school time
only: an evening homework question is answered the next morning) and at any hour for P0.

- P0: the nurse (medical), the safety officer (safety) or the owner acknowledges 30 s-3 min
  after the alert (most near one minute); about one in eight nobody does until the duty leader, paged by the
  escalation, answers. The owner writes to the parent a few minutes later (sometimes only
  after the update reminder) and closes it within the hour.
- P1: a pickup change while after-school care runs is answered by the duty leader within minutes.
  Otherwise the owner acknowledges within 20 school minutes; about one in eight the owner does not
  and the backup answers after the first escalation. A reply and the resolution follow.
- P2: answered within three school hours (next morning when sent in the evening); about one
  in twelve only after the promised day is over.
- P3: closed in a batch within a day or so of school time.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from relay.base.store import RequestRecord
from routing.calendar import SchoolCalendar
from routing.directory import Role, School
from routing.labels import Category, Urgency
from routing.plan import responders
from routing.roll_call import still_on_site

UNANSWERED_P0 = 0.12
UNANSWERED_P1 = 0.12
LATE_P2 = 0.08
LATE_UPDATE_P0 = 0.1

REPLIES = {
    "medical": "校医已到场，孩子在医务室休息，情况稳定，请您放心。",
    "safety": "值班老师已到现场处理，孩子现在和老师在一起，安全。",
    "attendance": "收到，已转告班主任，祝孩子早日康复。",
    "pickup": "收到，已告知班主任和门卫。",
    "academic": "已和任课老师确认，今天的作业是练习册对应页，孩子不会的题明天课上再讲。",
    "admin": "您好，具体安排请看学校公众号的通知，有问题随时联系。",
}


@dataclass(frozen=True)
class Action:
    at: float  # epoch seconds on the simulated clock: whole seconds + 0.5, so never at a timer's instant
    message: int
    kind: str  # ack | reply | resolve
    staff_id: str
    text: str | None = None


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    pattern: str  # prompt | slow | unanswered
    on_time: bool  # the staff answer within the SLA: the parent's promised time must then be kept


def _half(moment: dt.datetime) -> float:
    return float(int(moment.timestamp())) + 0.5


def _role(school: School, role: Role) -> str | None:
    found = school.with_role(role)
    return found[0].id if found else None


def _later(calendar: SchoolCalendar, start: dt.datetime, seconds: float, school_time: bool) -> dt.datetime:
    if school_time:
        return calendar.add_school_time(start, seconds)
    return start + dt.timedelta(seconds=seconds)


def plan_for(record: RequestRecord, school: School, calendar: SchoolCalendar, received: dt.datetime,
             seed: int, index: int) -> Plan:
    """What staff will do about this request, and when (seeded by the replay's seed and the message)."""
    rng = random.Random(f"{seed}:{index}")
    urgency = Urgency(record.urgency)
    owner = record.owner
    reply_text = REPLIES.get(record.category, "收到，已处理。")
    if urgency is Urgency.P3:
        done = _later(calendar, received, rng.uniform(1800, 36000), True)
        return Plan((Action(_half(done), index, "resolve", owner, "已阅"),), "prompt", True)

    if urgency is Urgency.P0:
        ack_within = school.sla[urgency].ack_within
        limit = ack_within.seconds if ack_within else 120.0
        if rng.random() < UNANSWERED_P0 and record.escalation:
            step = record.escalation[min(1, len(record.escalation) - 1)]
            acker = _role(school, Role.duty_leader) or _role(school, Role.principal) or owner
            acked = dt.datetime.fromisoformat(step.due_at) + dt.timedelta(seconds=rng.uniform(20, 150))
            pattern, on_time = "unanswered", False
        else:
            first = responders(school, Category(record.category))
            acker = first[0] if record.category in ("medical", "safety") and first else owner
            delay = rng.triangular(30, 180, 60)  # most within a minute or so, a few near three
            acked = received + dt.timedelta(seconds=delay)
            pattern, on_time = ("prompt", True) if delay < limit else ("slow", False)
        update = rng.uniform(960, 1500) if rng.random() < LATE_UPDATE_P0 else rng.uniform(180, 720)
        replied = acked + dt.timedelta(seconds=update)
        resolved = replied + dt.timedelta(seconds=rng.uniform(600, 3600))
        return Plan((Action(_half(acked), index, "ack", acker),
                     Action(_half(replied), index, "reply", owner, reply_text),
                     Action(_half(resolved), index, "resolve", owner)), pattern, on_time)

    if urgency is Urgency.P1 and record.category == Category.pickup and _role(school, Role.duty_leader) \
            and still_on_site(school, calendar, received):
        # A child still on site after closing: the duty leader, paged at once, answers within minutes.
        acker = _role(school, Role.duty_leader) or owner
        acked = received + dt.timedelta(seconds=rng.uniform(60, 300))
        replied = acked + dt.timedelta(seconds=rng.uniform(60, 600))
        resolved = replied + dt.timedelta(seconds=rng.uniform(60, 900))
        return Plan((Action(_half(acked), index, "ack", acker),
                     Action(_half(replied), index, "reply", acker, reply_text),
                     Action(_half(resolved), index, "resolve", acker)), "on_duty", True)
    if urgency is Urgency.P1 and record.escalation and rng.random() < UNANSWERED_P1:
        step = record.escalation[0]
        acker = step.notify[0] if step.notify else owner
        acked = _later(calendar, dt.datetime.fromisoformat(step.due_at), rng.uniform(120, 900), True)
        pattern, on_time = "unanswered", False
    elif urgency is Urgency.P1:
        acker, acked = owner, _later(calendar, received, rng.uniform(60, 1200), True)
        pattern, on_time = "prompt", True
    elif rng.random() < LATE_P2:
        due = dt.datetime.fromisoformat(record.ack_due_at) if record.ack_due_at else received
        acker, acked = owner, _later(calendar, due, rng.uniform(1800, 10800), True)
        pattern, on_time = "slow", False
    else:
        acker, acked = owner, _later(calendar, received, rng.uniform(300, 10800), True)
        pattern, on_time = "prompt", True
    replied = _later(calendar, acked, rng.uniform(60, 3600 if urgency is Urgency.P1 else 5400), True)
    resolved = _later(calendar, replied, rng.uniform(0, 1800), True)
    return Plan((Action(_half(acked), index, "ack", acker),
                 Action(_half(replied), index, "reply", acker, reply_text),
                 Action(_half(resolved), index, "resolve", acker)), pattern, on_time)
