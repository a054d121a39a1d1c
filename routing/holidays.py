"""China's national calendar: public holidays and make-up workdays (调休), from chinese-calendar.

chinese-calendar carries the State Council's schedule year by year; it learns a year
when the notice is published (usually in November of the year before). A date in a
year it does not know raises CalendarUnknown: weekends alone would be a guess, and
a wrong guess puts a teacher to work on National Day or a parent's request to sleep
over a make-up Saturday.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import chinese_calendar


class CalendarUnknown(Exception):
    """The calendar cannot say whether school is open: a year chinese-calendar does not
    know yet, or no school day ahead (no term configured)."""


class NationalKind(StrEnum):
    ordinary = "ordinary"  # a plain weekday or weekend
    holiday = "holiday"  # a public holiday, or a weekday given off in lieu of one
    makeup = "makeup"  # a weekend day worked in exchange (调休)


# chinese-calendar's names for the holidays, in the words a school uses.
HOLIDAY_NAMES_ZH: dict[str, str] = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


@dataclass(frozen=True)
class NationalDay:
    date: dt.date
    kind: NationalKind
    holiday: str | None = None  # chinese-calendar's English name, e.g. "National Day"
    stands_for: int | None = None  # make-up workday: the weekday (0 = Monday) whose timetable it follows

    @property
    def holiday_zh(self) -> str | None:
        return HOLIDAY_NAMES_ZH.get(self.holiday) if self.holiday else None


@cache
def known_years() -> range:
    """The years the installed chinese-calendar knows."""
    years = [day.year for day in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def is_known(year: int) -> bool:
    return year in known_years()


def national_day(date: dt.date) -> NationalDay:
    if not is_known(date.year):
        known = known_years()
        raise CalendarUnknown(
            f"chinese-calendar does not know the holidays of {date.year} yet "
            f"(it knows {known.start}-{known.stop - 1}); upgrade the chinesecalendar package"
        )
    try:
        resting, name = chinese_calendar.get_holiday_detail(date)
    except NotImplementedError as exc:  # a version whose data has gaps
        raise CalendarUnknown(str(exc)) from exc
    if name is None:
        return NationalDay(date, NationalKind.ordinary)
    if resting:
        return NationalDay(date, NationalKind.holiday, name)
    return NationalDay(date, NationalKind.makeup, name, _stands_for(date, name))


def _stands_for(date: dt.date, name: str) -> int | None:
    """The weekday a make-up workday replaces.

    The notice pairs no days explicitly; schools follow the weekdays given off in lieu,
    in order (2026-09-20 Sun works Tuesday 10-06's timetable, 10-10 Sat Wednesday 10-07's).
    When the counts differ (2018's Spring Festival) there is no honest pairing: None.
    """
    near = dt.timedelta(days=45)
    makeups = sorted(d for d, n in chinese_calendar.workdays.items() if n == name and abs(d - date) <= near)
    in_lieu = sorted(
        d for d, n in chinese_calendar.in_lieu_days.items() if n == name and abs(d - date) <= near
    )
    if len(makeups) != len(in_lieu) or date not in makeups:
        return None
    return in_lieu[makeups.index(date)].weekday()
