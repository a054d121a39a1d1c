"""The replay's figures: who was buzzed when, what waited for the morning, which promises held.

Everything here is computed from what the replay recorded (the receiver's notifications, the
stored requests and their timelines) and depends only on the seed, except what sits under
`latency`: real milliseconds from a parent's POST to the first alert, and the run's duration.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from typing import Any

from relay.cli.replay.harness import Replay
from relay.cli.replay.receiver import Notification
from relay.core.notice_events import Event
from routing.calendar import SchoolCalendar
from routing.directory import Role
from routing.labels import Urgency

URGENCIES = tuple(Urgency)
EVENING = 20  # the hour from which a message in a class chat is an evening message
FIRST_ALERTS = (Event.urgent, Event.created, Event.fyi)
OWN_ACK = Event.ack_confirmed  # "已确认，由您处理": the answer to one's own acknowledgement, not an alert
# Notices that would repeat what their recipient just did, when that person did something to the request then.
_SELF_EVENTS = (Event.ack_confirmed, Event.reassigned, Event.urgent, Event.created, Event.fyi)
_ACTIONS = ("acknowledged", "claimed", "reassigned", "retriaged", "replied", "resolved", "note")
# Issue 18's yardstick: notifications per academic-affairs teacher per school day in `make replay` on main on
# 2026-12-06 (seed 1, before the roll call and without self-confirmations' removal): 847 to 3 teachers over 6
# school days. The aim is a third fewer.
BEFORE_PER_ACADEMIC_AFFAIRS_DAY = 47.1


def _at(iso_text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(iso_text) if iso_text else None


def _spread(values: list[float], digits: int = 1) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"count": len(values), "median": round(statistics.median(ordered), digits), "p95": round(p95, digits),
            "max": round(ordered[-1], digits)}


class _Hours:
    def __init__(self, calendar: SchoolCalendar) -> None:
        self.calendar = calendar

    def inside(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.calendar.zone)
        day = self.calendar.day(local.date())
        if not day.school_day or day.hours is None:
            return False
        return day.hours[0] <= local.time() < day.hours[1]


def _notifications(replay: Replay, hours: _Hours) -> dict[str, Any]:
    school, zone = replay.school, replay.school.zone
    homerooms = {s.id for s in school.with_role(Role.homeroom)}
    per_staff_day: dict[str, Counter[str]] = defaultdict(Counter)
    per_staff_hour: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    per_hour: dict[str, list[int]] = {u.value: [0] * 24 for u in URGENCIES}
    outside: Counter[str] = Counter()
    outside_events: Counter[str] = Counter()
    evening: Counter[str] = Counter()
    homeroom_days: Counter[str] = Counter()
    homeroom_evenings: Counter[str] = Counter()
    for note in replay.notifications:
        local = dt.datetime.fromisoformat(note.sent_at).astimezone(zone)
        day = local.date().isoformat()
        per_staff_day[note.staff_id][day] += 1
        per_staff_hour[note.staff_id][local.hour] += 1
        if note.event != OWN_ACK:
            per_hour.setdefault(note.urgency, [0] * 24)[local.hour] += 1
        if not hours.inside(local):
            outside[note.urgency] += 1
            outside_events[note.event] += 1
        if local.hour >= EVENING:
            evening["homeroom" if note.staff_id in homerooms else "other"] += 1
        if note.staff_id in homerooms:
            homeroom_days[day] += 1
            homeroom_evenings[day] += int(local.hour >= EVENING)
    return {
        "total": len(replay.notifications),
        "by_event": dict(sorted(Counter(n.event for n in replay.notifications).items())),
        "by_channel": dict(sorted(Counter(n.channel for n in replay.notifications).items())),
        "confirmations_of_own_ack": sum(1 for n in replay.notifications if n.event == OWN_ACK),
        "by_urgency": {u: sum(1 for n in replay.notifications if n.urgency == u) for u in URGENCIES},
        "per_staff_per_day": {s: dict(sorted(c.items())) for s, c in sorted(per_staff_day.items())},
        "per_staff_per_hour": dict(sorted(per_staff_hour.items())),
        "per_hour_by_urgency": per_hour,  # alerts only: without the confirmations of one's own acknowledgement
        "out_of_hours": {"total": sum(outside.values()), "by_urgency": {u: outside[u] for u in URGENCIES},
                         "by_event": dict(sorted(outside_events.items()))},
        "after_20": {"total": sum(evening.values()), "to_homeroom": evening["homeroom"]},
        "to_homeroom": {"total": sum(homeroom_days.values()), "by_day": dict(sorted(homeroom_days.items())),
                        "after_20_by_day": dict(sorted(homeroom_evenings.items()))},
    }


def _kind_out_of_hours(note: Notification, duty: set[str]) -> str:
    """What a notification out of school hours was: the aim is P0 pages and digests only, besides the
    duty leader's page about a child still on site (a pickup change while after-school care runs)."""
    if note.event == Event.digest:
        return "digest"
    if note.urgency == Urgency.P0:
        return "P0 page"
    if note.event == Event.created and note.staff_id in duty:
        return "on duty (child on site)"
    return f"other: {note.event}"


def _self_confirmations(replay: Replay) -> int:
    """Notices to a person about a request they acted on at that very (simulated) second."""
    count = 0
    for note in replay.notifications:
        if note.event == OWN_ACK:
            count += 1
            continue
        if note.event not in _SELF_EVENTS:
            continue
        sent = dt.datetime.fromisoformat(note.sent_at)
        for entry in replay.timelines.get(note.request_id, []):
            moment = _at(entry.get("at"))
            if (entry.get("kind") in _ACTIONS and entry.get("by") == note.staff_id and moment is not None
                    and 0 <= (sent - moment).total_seconds() < 2):
                count += 1
                break
    return count


def _mornings(replay: Replay, hours: _Hours, school_days: list[str]) -> dict[str, Any]:
    """Issue 18's aims: who is buzzed out of hours and by what, digests a morning, the teachers' load."""
    school, zone = replay.school, replay.school.zone
    duty = {s.id for s in school.with_role(Role.duty_leader)}
    teachers = {s.id for s in school.with_role(Role.academic_affairs)}
    outside: Counter[str] = Counter()
    digests: Counter[tuple[str, str]] = Counter()
    to_teachers = 0
    for note in replay.notifications:
        local = dt.datetime.fromisoformat(note.sent_at).astimezone(zone)
        if not hours.inside(local):
            outside[_kind_out_of_hours(note, duty)] += 1
        if note.event == Event.digest:
            digests[(note.staff_id, local.date().isoformat())] += 1
        to_teachers += int(note.staff_id in teachers)
    per_day = round(to_teachers / max(1, len(teachers) * len(school_days)), 1)
    others = sum(n for kind, n in outside.items() if kind.startswith("other"))
    return {
        "out_of_hours_by_kind": dict(sorted(outside.items())),
        "out_of_hours_other": others,  # aim: 0
        "most_digests_per_person_per_morning": max(digests.values(), default=0),  # aim: at most 1
        "self_confirmations": _self_confirmations(replay),  # aim: 0
        "per_academic_affairs_teacher_per_school_day": per_day,
        "school_days": len(school_days),
        "before": BEFORE_PER_ACADEMIC_AFFAIRS_DAY,
        "aim_at_most": round(BEFORE_PER_ACADEMIC_AFFAIRS_DAY * 2 / 3, 1),  # a third fewer
    }


def _first(notes: list[Notification], request_id: str) -> Notification | None:
    found = [n for n in notes if request_id in n.request_ids]
    return min(found, key=lambda n: (n.sent_at, n.arrived)) if found else None


def _p0(replay: Replay) -> tuple[dict[str, Any], list[float]]:
    latencies: list[float] = []
    to_ack: list[float] = []
    to_answer: list[float] = []
    same_minute = escalated = on_time = fallbacks = 0
    requests = [s for s in replay.submitted if s.request_id in replay.records
                and replay.records[s.request_id].urgency == "P0"]
    by_request: dict[str, list[Notification]] = defaultdict(list)
    for note in replay.notifications:
        by_request[note.request_id].append(note)
    for submitted in requests:
        assert submitted.request_id is not None
        record = replay.records[submitted.request_id]
        created = dt.datetime.fromisoformat(record.created_at)
        first = _first(by_request[record.id], record.id)
        if first is not None:
            same_minute += int((dt.datetime.fromisoformat(first.sent_at) - created).total_seconds() < 60)
            arrivals = [n.arrived for n in by_request[record.id] if n.event in FIRST_ALERTS]
            latencies.append((min(arrivals) - submitted.posted) * 1000 if arrivals else float("nan"))
        fallbacks += sum(1 for n in by_request[record.id] if n.channel == "sms")
        moments = [_at(e.get("at")) for e in replay.timelines.get(record.id, [])
                   if e.get("kind") in ("acknowledged", "escalated")]
        acked = _at(record.acknowledged_at)
        if acked is not None:
            to_ack.append((acked - created).total_seconds())
            on_time += int(record.ack_due_at is not None and acked <= dt.datetime.fromisoformat(record.ack_due_at))
        answered = [m for m in moments if m is not None]
        if answered:
            to_answer.append((min(answered) - created).total_seconds())
        escalated += int(record.escalation_step > 0)
    return {
        "requests": len(requests),
        "first_notification_same_minute": same_minute,
        "to_ack_s": _spread(to_ack),
        "to_ack_or_escalation_s": _spread(to_answer),
        "acknowledged_on_time": on_time,
        "escalated": escalated,
        "sms_notifications": fallbacks,  # the second contact: an alert nobody acknowledged within 90 s
    }, [x for x in latencies if x == x]


def _promises(replay: Replay) -> dict[str, Any]:
    by_urgency: dict[str, Counter[str]] = {u: Counter() for u in URGENCIES}
    within: Counter[str] = Counter()
    broken_within: list[int] = []
    for submitted in replay.submitted:
        record = replay.records.get(submitted.request_id or "")
        if record is None:
            continue
        promised = _at(record.ack_due_at or record.resolve_due_at)
        done = _at(record.acknowledged_at if record.ack_due_at else record.resolved_at)
        kept = promised is not None and done is not None and done <= promised
        by_urgency[record.urgency]["total"] += 1
        by_urgency[record.urgency]["kept"] += int(kept)
        if submitted.plan is not None and submitted.plan.on_time:
            within["total"] += 1
            within["kept"] += int(kept)
            if not kept:
                broken_within.append(submitted.message.index)
    total = sum(c["total"] for c in by_urgency.values())
    kept_all = sum(c["kept"] for c in by_urgency.values())
    return {"total": total, "kept": kept_all,
            "by_urgency": {u: {"total": c["total"], "kept": c["kept"]} for u, c in by_urgency.items()},
            "staff_within_sla": {"total": within["total"], "kept": within["kept"]},
            "broken_although_staff_within_sla": broken_within}


def _group_chat(replay: Replay, days: list[str]) -> dict[str, Any]:
    zone = replay.school.zone
    classes = sorted({m.class_id for m in replay.messages} | set(_classes(replay)))
    per_class_day: Counter[tuple[str, str]] = Counter()
    evening: Counter[tuple[str, str]] = Counter()
    per_hour = [0] * 24
    for message in replay.messages:
        local = message.at.astimezone(zone)
        key = (message.class_id, local.date().isoformat())
        per_class_day[key] += 1
        per_hour[local.hour] += 1
        evening[key] += int(local.hour >= EVENING)
    cells = [per_class_day[(c, d)] for c in classes for d in days]
    evening_cells = [evening[(c, d)] for c in classes for d in days]
    return {
        "classes": len(classes),
        "messages": len(replay.messages),
        "per_class_per_day": {"mean": round(statistics.mean(cells), 2) if cells else 0, "max": max(cells, default=0)},
        "after_20": sum(evening_cells),
        "after_20_per_class_per_day": round(statistics.mean(evening_cells), 2) if evening_cells else 0,
        "per_hour": per_hour,
        "by_day": {d: sum(per_class_day[(c, d)] for c in classes) for d in days},
        "after_20_by_day": {d: sum(evening[(c, d)] for c in classes) for d in days},
    }


def _classes(replay: Replay) -> list[str]:
    chosen = replay.school.classes[: replay.options.classes] if replay.options.classes else replay.school.classes
    return [c.id for c in chosen]


def _after(replay: Replay, last: dt.date) -> list[dt.date]:
    zone = replay.school.zone
    seen = [dt.datetime.fromisoformat(n.sent_at).astimezone(zone).date() for n in replay.notifications]
    end = max(seen, default=last)
    return [last + dt.timedelta(days=n) for n in range(1, (end - last).days + 1)]


def _day(calendar: SchoolCalendar, date: dt.date) -> dict[str, Any]:
    day = calendar.day(date)
    hours = f"{day.hours[0]:%H:%M}-{day.hours[1]:%H:%M}" if day.hours else None
    return {"date": date.isoformat(), "school_day": day.school_day, "reason": day.reason, "hours": hours}


def build(replay: Replay) -> dict[str, Any]:
    school, options = replay.school, replay.options
    calendar = SchoolCalendar(school)
    days = [(options.start + dt.timedelta(days=n)) for n in range(options.days)]
    day_names = [d.isoformat() for d in days]
    hours = _Hours(calendar)
    classes = set(_classes(replay))
    records = list(replay.records.values())
    p0, latencies = _p0(replay)
    notifications = _notifications(replay, hours)
    chat = _group_chat(replay, day_names)
    cells = max(1, len(classes) * len(day_names))
    chat["relay_per_homeroom_teacher_per_day"] = round(notifications["to_homeroom"]["total"] / cells, 2)
    chat["relay_after_20_per_homeroom_teacher_per_day"] = round(notifications["after_20"]["to_homeroom"] / cells, 2)
    timelines = replay.timelines.values()
    calendar_days = [_day(calendar, d) for d in days]
    after_days = [_day(calendar, d) for d in _after(replay, days[-1])]
    owned = Counter(r.owner for r in records)
    classified: dict[str, Counter[str]] = {u: Counter() for u in URGENCIES}
    for submitted in replay.submitted:
        record = replay.records.get(submitted.request_id or "")
        if record is not None:
            classified[submitted.message.intended][record.urgency] += 1
    return {
        "school": {"id": school.id, "name": school.name, "classes": len(classes),
                   "students": sum(1 for s in school.students if s.class_id in classes)},
        "window": {"start": options.start.isoformat(), "days": options.days, "seed": options.seed,
                   "calendar": calendar_days,
                   # the replay runs on until staff have answered everything: held requests reach them after
                   "after": after_days},
        "messages": {
            "total": len(replay.messages),
            "accepted": sum(1 for s in replay.submitted if s.request_id),
            "by_day": dict(sorted(Counter(m.at.date().isoformat() for m in replay.messages).items())),
            "by_kind": dict(sorted(Counter(m.kind for m in replay.messages).items())),
            "by_urgency": {u: sum(1 for r in records if r.urgency == u) for u in URGENCIES},
            "intended_vs_classified": {u: dict(sorted(c.items())) for u, c in classified.items()},
        },
        "notifications": notifications,
        "mornings": _mornings(replay, hours, [d["date"] for d in (*calendar_days, *after_days) if d["school_day"]]),
        "held_for_morning": {
            "requests": sum(1 for t in timelines if any(e.get("kind") == "digest_sent" for e in t)),
            "digests": sum(1 for n in replay.notifications if n.event == Event.digest),
        },
        "p0": p0,
        "promises": _promises(replay),
        "ownership": {"requests": len(records), "with_owner": sum(1 for r in records if r.owner),
                      "with_due_time": sum(1 for r in records if r.ack_due_at or r.resolve_due_at)},
        "workload": {"owned": {s.id: owned[s.id] for s in school.with_role(Role.academic_affairs)},
                     "end_of_day": replay.workload},
        "group_chat": chat,
        "staff_actions": dict(sorted(Counter(f"{a.kind} {status}" for a, status in replay.actions).items())),
        "health": {"dead_letters": replay.dead_letters, "duplicate_notifications": replay.duplicates,
                   "bad_signatures": replay.bad_signatures, "drain_timeouts": replay.drain_timeouts},
        "latency": {"p0_first_notification_ms": _spread(latencies), "real_seconds": round(replay.real_seconds, 1),
                    "steps": replay.steps},
    }
