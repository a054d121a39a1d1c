"""The principal's weekly report: what came in, who answered on time, what waited for the morning.

Computed from Redis alone: the week's requests come from the per-school creation index
(`relay:{school}:requests`, written at intake), their timelines say what was held for the
morning digest, what escalated and which notifications reached staff outside school hours, and the
dead-letter list says what never reached anyone.
A request counts in the week it was received; "on time" compares the recorded moment of
the acknowledgement (or resolution) with the due time the parent was promised.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from relay.base import keys
from relay.base.store import RequestRecord, text
from relay.core import deadletters
from routing.calendar import CalendarUnknown, SchoolCalendar
from routing.directory import Role, School
from routing.labels import Urgency

URGENCIES = tuple(Urgency)
CATEGORIES = ("medical", "safety", "attendance", "pickup", "academic", "admin", "feedback", "other")
LIST_LIMIT = 50  # overdue and escalated requests shown by name; the CSV has them all


@dataclass
class Compliance:
    """Due times met: on time, late (done late, or still not done past the due time), not yet due."""

    on_time: int = 0
    late: int = 0
    pending: int = 0

    @property
    def rate(self) -> float | None:
        decided = self.on_time + self.late
        return self.on_time / decided if decided else None

    def count(self, verdict: str | None) -> None:
        if verdict == "on_time":
            self.on_time += 1
        elif verdict == "late":
            self.late += 1
        elif verdict == "pending":
            self.pending += 1


@dataclass
class Row:
    """One line of a compliance table: a teacher, or an urgency."""

    key: str
    label: str
    requests: int = 0
    ack: Compliance = field(default_factory=Compliance)
    resolve: Compliance = field(default_factory=Compliance)
    ack_seconds: list[float] = field(default_factory=list)
    reply_seconds: list[float] = field(default_factory=list)  # to the first reply the parent read
    open: int = 0
    overdue: int = 0

    @property
    def median_ack_seconds(self) -> float | None:
        return statistics.median(self.ack_seconds) if self.ack_seconds else None

    @property
    def median_reply_seconds(self) -> float | None:
        return statistics.median(self.reply_seconds) if self.reply_seconds else None


@dataclass(frozen=True)
class Line:
    """One request as the report and its CSV show it: no message text, no child's name."""

    record: RequestRecord
    ack_verdict: str | None
    resolve_verdict: str | None
    held_for_morning: bool
    escalated: bool
    overdue: bool


# What a notification out of school hours was, for the principal: whose mornings are still taken, and by what.
OUT_OF_HOURS_KINDS = ("p0_page", "escalation", "on_duty", "digest", "new_request", "fyi", "other")


@dataclass
class OutOfHours:
    """The notifications one staff member received outside school hours, by kind."""

    staff_id: str
    label: str
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def notice_kind(event: str, urgency: str, why_on_duty: bool = False) -> str:
    """One of OUT_OF_HOURS_KINDS for a delivered staff notification (its event name, without its prefix)."""
    if event == "escalated":
        return "escalation"
    if event == "digest":
        return "digest"
    if urgency == Urgency.P0:
        return "p0_page"
    if why_on_duty:
        return "on_duty"
    return {"created": "new_request", "fyi": "fyi"}.get(event, "other")


def _inside_hours(calendar: SchoolCalendar, moment: dt.datetime) -> bool:
    local = moment.astimezone(calendar.zone)
    try:
        day = calendar.day(local.date())
    except CalendarUnknown:
        return True  # unknown is not counted against anyone
    return day.school_day and day.hours is not None and day.hours[0] <= local.time() < day.hours[1]


def _out_of_hours(school: School, lines: list[Line], timelines: list[list[dict[str, Any]]]) -> list[OutOfHours]:
    """From the delivered entries of the week's requests' timelines (a digest is on its first request's)."""
    calendar = SchoolCalendar(school)
    duty = {s.id for s in school.with_role(Role.duty_leader)}
    rows: dict[str, OutOfHours] = {}
    for line, entries in zip(lines, timelines, strict=True):
        notified = next((e.get("notified") or [] for e in entries if e.get("kind") == "assigned"), [])
        for entry in entries:
            staff_id, event_id, at = entry.get("to"), str(entry.get("event_id") or ""), _moment(entry.get("at"))
            member = school.staff_member(str(staff_id)) if staff_id else None
            if entry.get("kind") != "delivered" or member is None or at is None or _inside_hours(calendar, at):
                continue
            event = event_id.split(".")[1] if event_id.count(".") >= 3 else "other"
            # A duty leader paged about a P1 at intake: a child still on site after closing (routing.roll_call).
            on_duty = event == "created" and member.id in duty and member.id in notified
            row = rows.setdefault(member.id, OutOfHours(member.id, member.name))
            row.by_kind[notice_kind(event, line.record.urgency, on_duty)] += 1
    return sorted(rows.values(), key=lambda r: (-r.total, r.staff_id))


@dataclass
class WeekReport:
    school_id: str
    start: dt.date
    end: dt.date  # exclusive
    now: dt.datetime
    lines: list[Line]
    by_category: dict[str, Counter[str]]  # category -> urgency -> count
    by_urgency: dict[Urgency, Row]
    per_teacher: list[Row]
    by_day: dict[str, Counter[str]]  # date -> urgency -> count
    held_by_day: Counter[str]
    dead_letters: list[dict[str, Any]]
    out_of_hours: list[OutOfHours] = field(default_factory=list)  # staff notified outside school hours

    @property
    def total(self) -> int:
        return len(self.lines)

    @property
    def overdue(self) -> list[Line]:
        return [line for line in self.lines if line.overdue]

    @property
    def escalated(self) -> list[Line]:
        return [line for line in self.lines if line.escalated]

    @property
    def held(self) -> int:
        return sum(self.held_by_day.values())


def week_start(today: dt.date) -> dt.date:
    """The Monday of the week `today` falls in."""
    return today - dt.timedelta(days=today.weekday())


def _moment(iso_text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(iso_text) if iso_text else None


def verdict(done_at: str | None, due_at: str | None, now: dt.datetime) -> str | None:
    """on_time / late / pending against a due time; None when the request had no such due time."""
    due, done = _moment(due_at), _moment(done_at)
    if due is None:
        return None
    if done is not None:
        return "on_time" if done <= due else "late"
    return "late" if now > due else "pending"


def _timelines(connection: redis.Redis, school_id: str, ids: list[str]) -> list[list[dict[str, Any]]]:
    pipe = connection.pipeline(transaction=False)
    for request_id in ids:
        pipe.lrange(keys.timeline(school_id, request_id), 0, -1)
    return [[json.loads(item) for item in entries] for entries in pipe.execute()]


def _records(connection: redis.Redis, school_id: str, ids: list[str]) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        raws = connection.mget([keys.request(school_id, i) for i in chunk])
        records += [RequestRecord.model_validate_json(raw) for raw in raws if raw]
    return records


def _line(record: RequestRecord, entries: list[dict[str, Any]], now: dt.datetime) -> Line:
    kinds = {str(entry.get("kind")) for entry in entries}
    due = _moment(record.next_due())
    return Line(
        record=record,
        ack_verdict=verdict(record.acknowledged_at, record.ack_due_at, now),
        resolve_verdict=verdict(record.resolved_at, record.resolve_due_at, now),
        held_for_morning="digest_sent" in kinds,
        escalated=record.escalation_step > 0 or bool(kinds & {"escalated", "escalated_no_update"}),
        overdue=record.is_open and due is not None and due < now,
    )


def _tally(row: Row, line: Line) -> None:
    record = line.record
    row.requests += 1
    row.ack.count(line.ack_verdict)
    row.resolve.count(line.resolve_verdict)
    acknowledged, created = _moment(record.acknowledged_at), _moment(record.created_at)
    if acknowledged is not None and created is not None:
        row.ack_seconds.append((acknowledged - created).total_seconds())
    replied = _moment(str(record.replies[0].get("at"))) if record.replies and record.replies[0].get("at") else None
    if replied is not None and created is not None:
        row.reply_seconds.append((replied - created).total_seconds())
    row.open += int(record.is_open)
    row.overdue += int(line.overdue)


def _dead_letters(connection: redis.Redis, school_id: str, start: float, end: float) -> list[dict[str, Any]]:
    return [letter.delivery.document() for letter in deadletters.letters(connection, school_id)
            if start <= letter.delivery.created_at < end]


def build(connection: redis.Redis, school: School, start: dt.date, now: dt.datetime) -> WeekReport:
    """The report of the seven days from `start` (00:00 in the school's zone), as it stands at `now`."""
    zone = school.zone
    begin = dt.datetime.combine(start, dt.time(), zone)
    finish = begin + dt.timedelta(days=7)
    ids = [text(i) for i in connection.zrangebyscore(keys.school_requests(school.id), begin.timestamp(),
                                                       f"({finish.timestamp()}")]
    records = _records(connection, school.id, ids)
    timelines = _timelines(connection, school.id, [r.id for r in records])
    lines = [_line(record, entries, now) for record, entries in zip(records, timelines, strict=True)]

    by_urgency = {u: Row(u, u) for u in URGENCIES}
    teachers = {s.id: Row(s.id, s.name) for s in school.with_role(Role.academic_affairs)}
    by_category: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    by_day: dict[str, Counter[str]] = {
        (start + dt.timedelta(days=n)).isoformat(): Counter() for n in range(7)
    }
    held_by_day: Counter[str] = Counter()
    for line in lines:
        record = line.record
        _tally(by_urgency.setdefault(record.urgency, Row(record.urgency, record.urgency)), line)
        if record.owner not in teachers:
            member = school.staff_member(record.owner)
            teachers[record.owner] = Row(record.owner, member.name if member else record.owner)
        _tally(teachers[record.owner], line)
        by_category.setdefault(record.category, Counter())[record.urgency] += 1
        day = dt.datetime.fromisoformat(record.created_at).astimezone(zone).date().isoformat()
        by_day.setdefault(day, Counter())[record.urgency] += 1
        if line.held_for_morning:
            held_by_day[day] += 1
    return WeekReport(
        school_id=school.id,
        start=start,
        end=start + dt.timedelta(days=7),
        now=now,
        lines=lines,
        by_category=by_category,
        by_urgency=by_urgency,
        per_teacher=list(teachers.values()),
        by_day=by_day,
        held_by_day=held_by_day,
        dead_letters=_dead_letters(connection, school.id, begin.timestamp(), finish.timestamp()),
        out_of_hours=_out_of_hours(school, lines, timelines),
    )
