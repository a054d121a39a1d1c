"""The morning roll call: when a request that arrives while the school is closed reaches staff.

Teachers' mornings: a parent who reports an absence at 6:30 does not page the academic-affairs
teacher at 6:30. With a school's `roll_call:` set, P1 requests received while the school is closed
wait, like P2/P3 always did, for one digest per person at the roll-call time of the next school
day (its `at`, or that day's opening), so a teacher gets at most one digest a morning. One
exception: a pickup change between closing and the end of after-school care concerns a child
still on site, and goes at once to whoever is on duty (duty_leader). P0 never waits.

Pure: the time is an argument, and the calendar is the caller's (its `estimated` marks stay true).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from routing.directory import School
from routing.holidays import CalendarUnknown
from routing.labels import Category, Urgency

if TYPE_CHECKING:
    from routing.calendar import SchoolCalendar


@dataclass(frozen=True)
class Arrival:
    """When a request's notices go out: at once (no `held_until`), or at `held_until` in one digest per
    person; with `on_duty`, whoever is on duty is told at once too."""

    held_until: dt.datetime | None = None
    on_duty: bool = False


AT_ONCE = Arrival()


def roll_call_on(school: School) -> bool:
    return school.roll_call is not None and school.roll_call.enabled


def next_roll_call(school: School, calendar: SchoolCalendar, moment: dt.datetime) -> dt.datetime | None:
    """None while the school is open at `moment`; else when what waits goes out: the next school day's
    roll call when the school has one, its opening otherwise (the digest of P2/P3 as before)."""
    opening = calendar.next_opening(moment)
    if opening == moment:
        return None
    at = school.roll_call.at_time() if school.roll_call is not None and school.roll_call.enabled else None
    if at is None:
        return opening
    hours = calendar.day(opening.date()).hours
    roll_call = dt.datetime.combine(opening.date(), at, opening.tzinfo)
    # `relay config check` keeps `at` within every day's hours; a day with other hours still gets its digest.
    return roll_call if hours is not None and hours[0] <= at < hours[1] else opening


def still_on_site(school: School, calendar: SchoolCalendar, moment: dt.datetime) -> bool:
    """After closing on a school day, before after-school care ends: children may still be at school."""
    until = school.roll_call.after_school_time() if roll_call_on(school) and school.roll_call else None
    if until is None:
        return False
    local = moment.astimezone(school.zone)
    day = calendar.day(local.date())
    return day.school_day and day.hours is not None and day.hours[1] <= local.time() < until


def arrival(school: School, calendar: SchoolCalendar, urgency: Urgency, category: Category,
            moment: dt.datetime) -> Arrival:
    """When the notices of a request of this urgency and category, received at `moment`, go out."""
    if urgency is Urgency.P0 or (urgency is Urgency.P1 and not roll_call_on(school)):
        return AT_ONCE
    try:
        on_site = urgency is Urgency.P1 and category is Category.pickup and still_on_site(school, calendar, moment)
        return Arrival(held_until=next_roll_call(school, calendar, moment), on_duty=on_site)
    except CalendarUnknown:
        return AT_ONCE  # without school days to wait for, telling someone now beats holding blindly


def held_until(school: School, calendar: SchoolCalendar, moment: dt.datetime) -> dt.datetime | None:
    """With a roll call, while the school is closed: the next roll call, when what is not an emergency goes
    out (an outbreak alert too); otherwise None, at once."""
    if not roll_call_on(school):
        return None
    try:
        return next_roll_call(school, calendar, moment)
    except CalendarUnknown:
        return None
