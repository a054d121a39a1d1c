"""The YAML's `calendar:`: official holidays and make-up workdays that a school enters itself.

For a year chinese-calendar does not know yet (the State Council publishes the next year's
schedule in November or December; the package learns it later, if ever) and wherever it must
be corrected. An entered date wins over chinese-calendar; a year with any entered date is known,
its other days ordinary weekdays and weekends.

```yaml
calendar:
  holidays: [{from: 2027-02-05, to: 2027-02-11, name: 春节}]   # or {date: ..., name: ...}
  workdays: [{date: 2027-02-14, name: 春节调休}]
```
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

# Longer than any official holiday (National Day with its bridges is 8 or 9 days): a longer one is a
# mistyped year or month, or a vacation, which belongs in the school's terms.
MAX_HOLIDAY_DAYS = 31


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnteredHoliday(_Entry):
    start: dt.date
    end: dt.date
    name: str = Field(min_length=1, max_length=40)

    @model_validator(mode="before")
    @classmethod
    def _one_day_or_a_span(cls, value: Any) -> Any:
        # Written as {date, name} or {from, to, name}; stored (and exported) the same way.
        if not isinstance(value, dict) or "start" in value:
            return value
        given = dict(value)
        if "date" in given and ("from" in given or "to" in given):
            raise ValueError("write either date (one day) or from and to (a span), not both")
        if "date" in given:
            day = given.pop("date")
            return {"start": day, "end": day, **given}
        if "from" not in given:
            raise ValueError("a holiday needs date (one day) or from and to (a span)")
        start = given.pop("from")
        return {"start": start, "end": given.pop("to", start), **given}

    @model_validator(mode="after")
    def _sane_span(self) -> EnteredHoliday:
        if self.end < self.start:
            raise ValueError(f"to ({self.end}) is before from ({self.start})")
        if (self.end - self.start).days + 1 > MAX_HOLIDAY_DAYS:
            raise ValueError(f"{(self.end - self.start).days + 1} days is longer than any official holiday "
                             f"({MAX_HOLIDAY_DAYS} at most): a mistyped date? Vacations belong in terms")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, str]:
        if self.start == self.end:
            return {"date": self.start.isoformat(), "name": self.name}
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "name": self.name}

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]


class EnteredWorkday(_Entry):
    date: dt.date
    name: str = Field(min_length=1, max_length=40)


class EnteredCalendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    holidays: tuple[EnteredHoliday, ...] = ()
    workdays: tuple[EnteredWorkday, ...] = ()

    @model_validator(mode="after")
    def _each_date_once(self) -> EnteredCalendar:
        off: dict[dt.date, int] = {}
        for i, holiday in enumerate(self.holidays):
            for day in holiday.days():
                if day in off:
                    raise ValueError(f"holidays[{i}] and holidays[{off[day]}] both hold {day}")
                off[day] = i
        worked: dict[dt.date, int] = {}
        for i, workday in enumerate(self.workdays):
            if workday.date in worked:
                raise ValueError(f"workdays[{i}] and workdays[{worked[workday.date]}] are both {workday.date}")
            if workday.date in off:
                raise ValueError(f"workdays[{i}] ({workday.date}) is also a holiday (holidays[{off[workday.date]}])")
            worked[workday.date] = i
        return self

    def holiday_on(self, date: dt.date) -> EnteredHoliday | None:
        return next((h for h in self.holidays if h.start <= date <= h.end), None)

    def workday_on(self, date: dt.date) -> EnteredWorkday | None:
        return next((w for w in self.workdays if w.date == date), None)

    def years(self) -> set[int]:
        """The years entered: each of their other days is an ordinary weekday or weekend."""
        found = {w.date.year for w in self.workdays}
        for holiday in self.holidays:
            found.update(range(holiday.start.year, holiday.end.year + 1))
        return found

    def weekday_workdays(self) -> list[int]:
        """The indexes of make-up workdays that fall on a weekday, which changes nothing (a typo?)."""
        return [i for i, w in enumerate(self.workdays) if w.date.weekday() < 5]
