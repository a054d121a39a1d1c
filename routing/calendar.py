"""The school-day calendar: school hours, China's holidays and make-up workdays, terms, closures.

A day is decided in this order, the first that applies wins:
  1. a school closure from the configuration (运动会, 停电);
  2. outside every configured term: vacation (寒假, 暑假);
  3. a public holiday, or a make-up workday (调休) with the hours of the weekday it stands in for,
     from the school's entered `calendar:` first, then chinese-calendar;
  4. the school's hours for that weekday, or none (weekend).
So a date that only 1-2 decide never needs holiday data. A date that needs it in a year that
neither the entered calendar nor chinese-calendar knows is planned by 4 alone and marked
`estimated`: a parent is never refused for want of a holiday list, and nobody is told a
guess as a fact (`relay calendar` and `relay eta` say "estimated": true and warn).

Everything here takes the time as an argument and reads no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from routing.directory import WEEKDAYS, School
from routing.durations import Duration
from routing.holidays import (
    HOLIDAY_NAMES_ZH,
    CalendarUnknown,
    NationalDay,
    NationalKind,
    is_known_with,
    national_day,
)
from routing.labels import Category, Urgency
from routing.roll_call import arrival

__all__ = [
    "CalendarUnknown",
    "DayKind",
    "SchoolCalendar",
    "SchoolDay",
    "SlaDue",
    "calendar_days",
    "eta",
    "eta_text",
    "missing_years",
    "quiet_until",
    "seen_text",
    "sla_due",
    "unknown_years",
]

_UTC = dt.UTC
_HORIZON = 400  # days searched for the next school day: longer than any vacation


class DayKind(StrEnum):
    school_day = "school day"
    makeup = "make-up workday"
    weekend = "weekend"
    no_hours = "no school hours"
    holiday = "holiday"
    vacation = "vacation"
    closure = "closure"


@dataclass(frozen=True)
class SchoolDay:
    date: dt.date
    school_day: bool
    reason: str
    hours: tuple[dt.time, dt.time] | None
    kind: DayKind = DayKind.school_day
    name: str | None = None  # in the school's words: 国庆节, 寒假, 运动会
    estimated: bool = False  # a year without holiday data: weekdays and weekends only


def _span(text: str) -> tuple[dt.time, dt.time]:
    start, end = text.split("-")
    return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


def _aware(moment: dt.datetime) -> dt.datetime:
    # A naive datetime would be read in the host's zone: a hidden environment read.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the moment must carry a time zone")
    return moment


def _vacation_name(date: dt.date, before: dt.date | None, after: dt.date | None) -> str | None:
    """寒假 or 暑假 from the months of the break between two terms, else from the date's month."""
    months: set[int] = set()
    if before is not None and after is not None and (after - before).days < 200:
        months = {(before + dt.timedelta(days=n)).month for n in range(1, (after - before).days)}
    winter, summer = bool(months & {1, 2}), bool(months & {7, 8})
    if winter != summer:
        return "寒假" if winter else "暑假"
    if date.month in (12, 1, 2):
        return "寒假"
    if date.month in (6, 7, 8, 9):
        return "暑假"
    return None


# The usual breaks of a Chinese school year (month, day) to (month, day), for the days past the configured terms.
_USUAL_BREAKS = (("寒假", (1, 20), (2, 29)), ("暑假", (7, 11), (8, 31)))


def _usual_break(date: dt.date) -> str | None:
    return next((name for name, first, last in _USUAL_BREAKS if first <= (date.month, date.day) <= last), None)


class SchoolCalendar:
    def __init__(self, school: School) -> None:
        self.school = school
        self.zone = school.zone
        self._days: dict[dt.date, SchoolDay] = {}
        self._terms_end = max((t.end for t in school.terms), default=None)
        # Why the estimated days this calendar was asked about are estimates (a due time computed
        # through one of them is an estimate too): years without holiday data, days past the terms.
        self.estimated_years: set[int] = set()
        self.past_terms_end: dt.date | None = None

    @property
    def estimated(self) -> bool:
        return bool(self.estimated_years) or self.past_terms_end is not None

    def day(self, date: dt.date) -> SchoolDay:
        found = self._days.get(date)
        if found is None:
            found = self._days[date] = self._decide(date)
        if found.estimated:
            if not is_known_with(date.year, self.school.calendar):
                self.estimated_years.add(date.year)
            if self._terms_end is not None and date > self._terms_end:
                self.past_terms_end = self._terms_end
        return found

    def _decide(self, date: dt.date) -> SchoolDay:
        for closure in self.school.closures:
            if closure.start <= date <= (closure.end or closure.start):
                return SchoolDay(
                    date, False, f"closure: {closure.reason}", None, DayKind.closure, closure.reason
                )
        terms = self.school.terms
        # Past the last configured term nobody has said when the next one starts: rather than no
        # school day at all (and no due time), its days follow the usual school year, marked estimated.
        past_terms = self._terms_end is not None and date > self._terms_end
        usual = _usual_break(date) if past_terms else None
        if usual is not None:
            return SchoolDay(date, False, f"vacation: {usual}", None, DayKind.vacation, usual, estimated=True)
        if terms and not past_terms and not any(term.start <= date <= term.end for term in terms):
            before = max((t.end for t in terms if t.end < date), default=None)
            after = min((t.start for t in terms if t.start > date), default=None)
            name = _vacation_name(date, before, after)
            reason = f"vacation: {name}" if name else "vacation"
            return SchoolDay(date, False, reason, None, DayKind.vacation, name)
        try:
            national, estimated = national_day(date, self.school.calendar), past_terms
        except CalendarUnknown:
            national, estimated = NationalDay(date, NationalKind.ordinary), True
        if national.kind is NationalKind.holiday:
            names = (national.holiday, national.holiday_zh if national.holiday_zh != national.holiday else None)
            reason = " ".join(filter(None, ("holiday:", *names)))
            return SchoolDay(
                date, False, reason, None, DayKind.holiday, national.holiday_zh or national.holiday, estimated
            )
        weekday = WEEKDAYS[date.weekday()]
        if national.kind is NationalKind.makeup:
            hours = self.school.hours
            stands_for = WEEKDAYS[national.stands_for] if national.stands_for is not None else "mon"
            span = hours.get(stands_for) or hours.get("mon") or next(iter(hours.values()), None)
            if span is not None:
                reason = f"make-up workday (调休) for {national.holiday}"
                return SchoolDay(date, True, reason, _span(span), DayKind.makeup, national.holiday_zh, estimated)
        span = self.school.hours.get(weekday)
        if span is None:
            if date.weekday() >= 5:
                return SchoolDay(date, False, "weekend", None, DayKind.weekend, estimated=estimated)
            return SchoolDay(date, False, f"no school hours on {weekday}", None, DayKind.no_hours,
                             estimated=estimated)
        return SchoolDay(date, True, "school day", _span(span), estimated=estimated)

    def _bounds(self, date: dt.date) -> tuple[dt.datetime, dt.datetime]:
        hours = self.day(date).hours
        assert hours is not None
        return dt.datetime.combine(date, hours[0], self.zone), dt.datetime.combine(date, hours[1], self.zone)

    def _school_day_after(self, date: dt.date) -> dt.date:
        for offset in range(1, _HORIZON):
            candidate = date + dt.timedelta(days=offset)
            if self.day(candidate).school_day:
                return candidate
        raise CalendarUnknown(f"no school day within {_HORIZON} days after {date}: are the school hours and terms configured?")

    def next_opening(self, moment: dt.datetime) -> dt.datetime:
        """`moment` itself when it falls in school hours, else the next opening (in the school's zone)."""
        local = _aware(moment).astimezone(self.zone)
        date = local.date()
        if not self.day(date).school_day:
            date = self._school_day_after(date)
        while True:
            opening, closing = self._bounds(date)
            if local < opening:
                return opening
            if local < closing:
                return local
            date = self._school_day_after(date)

    def add_school_time(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """The moment `seconds` of school hours after `start`."""
        moment = self.next_opening(start)
        remaining = dt.timedelta(seconds=seconds)
        while True:
            _, closing = self._bounds(moment.date())
            # Arithmetic in UTC: a zone's wall clock may jump (DST) between moment and closing.
            left_today = closing.astimezone(_UTC) - moment.astimezone(_UTC)
            if remaining <= left_today:
                return (moment.astimezone(_UTC) + remaining).astimezone(self.zone)
            remaining -= left_today
            moment = self.next_opening(closing)

    def add_school_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same point of the school day `days` school days on.

        Received out of hours (or at opening), the clock starts at the next opening, so
        "1d" from Friday evening ends at Monday's closing; received at 10:00 on a
        Wednesday it ends at 10:00 on Thursday, never at Wednesday's closing.
        """
        moment = self.next_opening(start)
        opening, _ = self._bounds(moment.date())
        into = moment.astimezone(_UTC) - opening.astimezone(_UTC)
        date = moment.date()
        if not into:
            for _ in range(days - 1):
                date = self._school_day_after(date)
            return self._bounds(date)[1]
        for _ in range(days):
            date = self._school_day_after(date)
        opening, closing = self._bounds(date)
        return min((opening.astimezone(_UTC) + into).astimezone(self.zone), closing)

    def due(self, start: dt.datetime, duration: Duration, school_time: bool) -> dt.datetime:
        """`duration` after `start`: in school time (days are school days) or on the wall clock."""
        if not school_time:
            return (_aware(start).astimezone(_UTC) + dt.timedelta(seconds=duration.seconds)).astimezone(
                self.zone
            )
        if duration.is_days:
            return self.add_school_days(start, duration.amount)
        return self.add_school_time(start, duration.seconds)


def calendar_days(
    school: School, start: dt.date, days: int, calendar: SchoolCalendar | None = None
) -> list[dict[str, object]]:
    """The lines of `relay calendar`: {"date", "school_day", "reason", "hours"} for `days` days from `start`,
    and "estimated": true on a day planned without holiday data or past the configured terms."""
    if days < 0:
        raise ValueError("days must not be negative")
    calendar = calendar or SchoolCalendar(school)
    out: list[dict[str, object]] = []
    for offset in range(days):
        day = calendar.day(start + dt.timedelta(days=offset))
        hours = f"{day.hours[0]:%H:%M}-{day.hours[1]:%H:%M}" if day.hours else None
        line: dict[str, object] = {
            "date": day.date.isoformat(), "school_day": day.school_day, "reason": day.reason, "hours": hours
        }
        if day.estimated:
            line["estimated"] = True
        out.append(line)
    return out


def quiet_until(school: School, moment: dt.datetime) -> dt.datetime | None:
    """None in school hours; else the next opening, when held P2/P3 notices go out as one digest."""
    opening = SchoolCalendar(school).next_opening(moment)
    return None if opening == moment else opening


def unknown_years(school: School, years: Iterable[int] = ()) -> list[int]:
    """The years, of those given and those the school's terms touch, whose holidays neither
    chinese-calendar nor the school's entered calendar knows.

    `relay config check` warns about them: their due times are estimates (weekdays and weekends).
    """
    wanted = set(years)
    for term in school.terms:
        wanted.update(range(term.start.year, term.end.year + 1))
    return sorted(year for year in wanted if not is_known_with(year, school.calendar))


# From this month on, next year's holidays are worth entering: the State Council publishes them in
# November or December, and a request in late December already has due times in the new year.
WARN_FROM_MONTH = 11


def missing_years(school: School, today: dt.date) -> list[int]:
    """The years the school plans soon without holiday data: this year, and from November the next.

    The operators' warning (metric and admin banner) says these.
    """
    soon = [today.year] + ([today.year + 1] if today.month >= WARN_FROM_MONTH else [])
    return [year for year in soon if not is_known_with(year, school.calendar)]


@dataclass(frozen=True)
class SlaDue:
    ack_due_at: dt.datetime | None
    resolve_due_at: dt.datetime | None
    school_time: bool  # the clocks run in school hours only (P1-P3)
    promised: dt.datetime  # what the parent is told: the acknowledgement, else the resolution


def sla_due(
    school: School, urgency: Urgency, now: dt.datetime, calendar: SchoolCalendar | None = None
) -> SlaDue:
    """The due times of a request of `urgency` received at `now`: P0 on the wall clock, P1-P3 in school time."""
    calendar = calendar or SchoolCalendar(school)
    policy = school.sla[urgency]
    school_time = urgency is not Urgency.P0
    ack = calendar.due(now, policy.ack_within, school_time) if policy.ack_within else None
    resolve = calendar.due(now, policy.resolve_within, school_time) if policy.resolve_within else None
    return SlaDue(ack, resolve, school_time, ack or resolve or now)


def eta(
    school: School, urgency: Urgency | str, at: dt.datetime, *, lang: str = "zh",
    calendar: SchoolCalendar | None = None,
) -> dict[str, object]:
    """The line of `relay eta`, with "estimated": true when a due time crossed a year without holiday
    data (the given `calendar` then names those years). A naive `at` is read in the school's time zone."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=school.zone)
    calendar = calendar or SchoolCalendar(school)
    urgency = Urgency(urgency)
    # A P1 that waits for the morning roll call is due from it, and the parent is told when it will be seen
    # (routing.plan does the same at intake, with the owner's name).
    held = arrival(school, calendar, urgency, Category.other, at).held_until if urgency is Urgency.P1 else None
    due = sla_due(school, urgency, held or at, calendar)

    def iso(moment: dt.datetime | None) -> str | None:
        return moment.astimezone(school.zone).isoformat(timespec="seconds") if moment else None

    words = (seen_text("", held, at, school.zone, lang=lang) if held is not None
             else eta_text(due.promised, at, school.zone, lang=lang, calendar=calendar))
    line: dict[str, object] = {
        "ack_due_at": iso(due.ack_due_at),
        "resolve_due_at": iso(due.resolve_due_at),
        "eta_text": words,
    }
    if calendar.estimated:
        line["estimated"] = True
    return line


_WEEKDAYS_ZH = "一二三四五六日"
_PERIODS_ZH = (
    (6, "凌晨"),
    (12, "上午"),
    (13, "中午"),
    (18, "下午"),
    (24, "晚上"),
)  # hour before which each applies
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_VACATIONS_EN = {"寒假": "winter vacation", "暑假": "summer vacation"}
_HOLIDAYS_EN = {zh: en for en, zh in HOLIDAY_NAMES_ZH.items()}


def _break_between(calendar: SchoolCalendar, today: dt.date, due: dt.date) -> SchoolDay | None:
    """The vacation or holiday the wait spans, if any: it explains a long wait."""
    date = today + dt.timedelta(days=1)
    while date < due:
        try:
            day = calendar.day(date)
        except CalendarUnknown:
            return None
        if day.kind in (DayKind.vacation, DayKind.holiday):
            return day
        date += dt.timedelta(days=1)
    return None


def _zh_clock(moment: dt.datetime) -> str:
    hour = moment.hour
    period = next(word for until, word in _PERIODS_ZH if hour < until)
    return f"{period} {hour if hour <= 12 else hour - 12}:{moment.minute:02d}"


def _zh_day(local: dt.datetime, today: dt.date) -> str:
    days = (local.date() - today).days
    weekday = _WEEKDAYS_ZH[local.weekday()]
    if days == 0:
        return "今天"
    if days == 1:
        return f"明天（周{weekday}）"
    if 1 < days < 7:
        same_week = local.isocalendar()[:2] == today.isocalendar()[:2]
        return f"{'' if same_week else '下'}周{weekday}"
    return f" {local.month}月{local.day}日（周{weekday}）"


def _zh(local: dt.datetime, today: dt.date, pause: SchoolDay | None) -> str:
    when = _zh_day(local, today)
    note = ""
    if pause is not None and pause.kind is DayKind.vacation:
        note = f"（{pause.name or '放假'}期间）"
    elif pause is not None:
        note = f"（{pause.name}放假）"
    return f"预计{when}{_zh_clock(local)} 前回复{note}"


def _en_day(local: dt.datetime, today: dt.date) -> str:
    days = (local.date() - today).days
    weekday = _WEEKDAYS_EN[local.weekday()]
    if days == 0:
        return "today"
    if days == 1:
        return f"tomorrow ({weekday})"
    if 1 < days < 7:
        return weekday
    return f"{local.day} {_MONTHS_EN[local.month - 1]} ({weekday})"


def _en(local: dt.datetime, today: dt.date, pause: SchoolDay | None) -> str:
    when = _en_day(local, today)
    note = ""
    if pause is not None and pause.kind is DayKind.vacation:
        note = f" ({_VACATIONS_EN.get(pause.name or '', 'school vacation')})"
    elif pause is not None:
        note = f" ({_HOLIDAYS_EN.get(pause.name or '', pause.name)} holiday)"
    return f"Expected reply by {when} {local.hour}:{local.minute:02d}{note}"


def eta_text(
    due: dt.datetime,
    now: dt.datetime,
    zone: dt.tzinfo,
    *,
    lang: str = "zh",
    calendar: SchoolCalendar | None = None,
) -> str:
    """What the parent reads: "预计明天（周一）上午 9:00 前回复", or with lang="en"
    "Expected reply by tomorrow (Mon) 9:00".

    Near days are named (今天, 明天, 周四, 下周二); from a week on, the date. Given the
    calendar, a wait across a vacation or a holiday says so: "（寒假期间）", "（国庆节放假）".
    """
    local = _aware(due).astimezone(zone)
    today = _aware(now).astimezone(zone).date()
    pause = _break_between(calendar, today, local.date()) if calendar is not None else None
    if lang == "en":
        return _en(local, today, pause)
    if lang != "zh":
        raise ValueError(f"unknown language {lang!r}: use zh or en")
    return _zh(local, today, pause)


def opening_text(school: School, now: dt.datetime) -> str | None:
    """Out of school hours, when the school opens again, as a parent reads it
    ("学校明天（周一）上午 7:40 开始办公"); None in school hours or when the calendar cannot tell."""
    try:
        opening = quiet_until(school, now)
    except CalendarUnknown:
        return None
    if opening is None:
        return None
    local = opening.astimezone(school.zone)
    today = _aware(now).astimezone(school.zone).date()
    return f"学校{_zh_day(local, today).strip()}{_zh_clock(local)} 开始办公"


def seen_text(owner: str, seen_at: dt.datetime, now: dt.datetime, zone: dt.tzinfo, *, lang: str = "zh") -> str:
    """What the parent reads when their request waits for the morning roll call: "王老师将于7:40前看到",
    "王老师将于明天（周一）7:40前看到"; with lang="en" "Ms Wang will see it by tomorrow (Mon) 7:40"."""
    local = _aware(seen_at).astimezone(zone)
    today = _aware(now).astimezone(zone).date()
    clock = f"{local.hour}:{local.minute:02d}"
    if lang == "en":
        return f"{owner or 'A teacher'} will see it by {_en_day(local, today)} {clock}"
    if lang != "zh":
        raise ValueError(f"unknown language {lang!r}: use zh or en")
    day = _zh_day(local, today)
    return f"{owner or '老师'}将于{'' if day == '今天' else day.strip()}{clock}前看到"
