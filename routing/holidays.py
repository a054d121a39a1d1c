"""China's national calendar: public holidays and make-up workdays (调休), from chinese-calendar
and from what the school entered under `calendar:` (routing.entered_calendar), which wins.

chinese-calendar carries the State Council's schedule year by year; it learns a year
some time after the notice is published (usually in November of the year before), and
1.11.0 is the last release. A date in a year that neither knows raises CalendarUnknown
here; the school calendar then plans it as an ordinary weekday or weekend and marks it
estimated, because a parent must never be refused for want of a holiday list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import chinese_calendar

from routing.entered_calendar import EnteredCalendar


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
    holiday: str | None = None  # chinese-calendar's English name, e.g. "National Day"; else the entered name
    stands_for: int | None = None  # make-up workday: the weekday (0 = Monday) whose timetable it follows
    entered_name: str | None = None  # the name the school entered (春节, 春节调休)

    @property
    def holiday_zh(self) -> str | None:
        if self.entered_name:
            return self.entered_name
        return HOLIDAY_NAMES_ZH.get(self.holiday) if self.holiday else None


_HOLIDAY_NAMES_EN = {zh: en for en, zh in HOLIDAY_NAMES_ZH.items()}


@cache
def known_years() -> range:
    """The years the installed chinese-calendar knows."""
    years = [day.year for day in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def is_known(year: int) -> bool:
    return year in known_years()


def is_known_with(year: int, entered: EnteredCalendar | None) -> bool:
    """Whether chinese-calendar or the entered calendar knows the year's holidays."""
    return is_known(year) or (entered is not None and year in entered.years())


def _entered_day(date: dt.date, entered: EnteredCalendar) -> NationalDay | None:
    holiday = entered.holiday_on(date)
    if holiday is not None:
        return NationalDay(date, NationalKind.holiday, _HOLIDAY_NAMES_EN.get(holiday.name, holiday.name),
                           entered_name=holiday.name)
    workday = entered.workday_on(date)
    if workday is not None:
        # No pairing with a weekday given off can be read from entered dates: Monday's timetable.
        name = workday.name.removesuffix("调休") or workday.name
        return NationalDay(date, NationalKind.makeup, _HOLIDAY_NAMES_EN.get(name, name), entered_name=name)
    if date.year in entered.years() and not is_known(date.year):
        return NationalDay(date, NationalKind.ordinary)
    return None


def national_day(date: dt.date, entered: EnteredCalendar | None = None) -> NationalDay:
    if entered is not None:
        found = _entered_day(date, entered)
        if found is not None:
            return found
    if not is_known(date.year):
        known = known_years()
        raise CalendarUnknown(
            f"chinese-calendar does not know the holidays of {date.year} yet "
            f"(it knows {known.start}-{known.stop - 1}) and the configuration's calendar: has no date in it"
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
