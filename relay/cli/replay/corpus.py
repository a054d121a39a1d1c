"""Other people's words in the replay: a labelled corpus (the `relay eval` format) placed over the week.

Each labelled line becomes a parent's message at the hours the generator gives its kind of
message (messages.KINDS: absences 6:30-8:00, pickup changes in the afternoon, homework in the
evening, emergencies in school hours or at night), on the days that kind is written, so the
hourly curve is the replay's own while the words are the corpus's. The placing is seeded:
the same files, school, days and seed give the same week.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path

from relay.cli.replay.messages import (
    ABSENCE_PEAK,
    EMERGENCIES_AT_NIGHT_PER_WEEK,
    EMERGENCIES_IN_SCHOOL_PER_WEEK,
    EMERGENCY_HOURS_AT_NIGHT,
    EMERGENCY_HOURS_IN_SCHOOL,
    KINDS,
    Kind,
    ParentMessage,
    author,
    moment,
)
from relay.cli.triage_eval import Example, InputError, read_examples
from routing.calendar import SchoolCalendar, SchoolDay
from routing.directory import School
from routing.labels import Urgency

# The generator's kinds a labelled line may be, by its category; a category not listed (or without a kind
# of its urgency) takes every kind of its urgency, in proportion to their rates.
KINDS_OF_CATEGORY = {
    "attendance": ("absence", "late", "notice"),
    "medical": ("absence", "notice"),
    "pickup": ("pickup",),
    "academic": ("homework", "chatter"),
    "admin": ("admin",),
    "feedback": ("thanks",),
    "other": ("thanks",),
}
# An emergency is written in school hours or at night, at the generator's rates (3 a school week, 2 a week).
EMERGENCY_IN_SCHOOL = Kind("emergency", "P0", EMERGENCIES_IN_SCHOOL_PER_WEEK / 5, 0.0, EMERGENCY_HOURS_IN_SCHOOL, (),
                           ())
EMERGENCY_AT_NIGHT = Kind("emergency", "P0", EMERGENCIES_AT_NIGHT_PER_WEEK / 7, EMERGENCIES_AT_NIGHT_PER_WEEK / 7,
                          EMERGENCY_HOURS_AT_NIGHT, EMERGENCY_HOURS_AT_NIGHT, ())


def read(paths: Sequence[Path]) -> list[Example]:
    """Every labelled line of the files, in order; the first bad line is an InputError naming file:line."""
    examples: list[Example] = []
    for path in paths:
        found = read_examples(path)
        if not found:
            raise InputError(f"{path}: no labelled lines")
        examples += found
    return examples


def _kinds(example: Example) -> tuple[Kind, ...]:
    if example.urgency is Urgency.P0:
        return (EMERGENCY_IN_SCHOOL, EMERGENCY_AT_NIGHT)
    same_urgency = tuple(k for k in KINDS if k.intended == example.urgency.value)
    named = KINDS_OF_CATEGORY.get(example.category.value, ())
    return tuple(k for k in same_urgency if k.name in named) or same_urgency


def _rate(kind: Kind, day: SchoolDay) -> float:
    return kind.school_rate if day.school_day else kind.off_rate


def _when(rng: random.Random, kinds: tuple[Kind, ...], days: list[SchoolDay], zone: dt.tzinfo) -> tuple[Kind, dt.datetime]:
    """A day and a kind in proportion to how often that kind is written that day, then an hour of the kind's."""
    pairs = [(kind, day) for kind in kinds for day in days]
    weights = [_rate(kind, day) for kind, day in pairs]
    if not any(weights):  # a window without a day this kind is written on (a holiday week): any day, its hours
        pairs = [(kind, day) for kind, day in pairs if kind.school_hours or kind.off_hours]
        weights = [1.0] * len(pairs)
    kind, day = rng.choices(pairs, weights)[0]
    hours = (kind.school_hours if day.school_day else kind.off_hours) or kind.school_hours or kind.off_hours
    peak = ABSENCE_PEAK if kind.name == "absence" else None
    return kind, moment(rng, day.date, hours, zone, peak)


def place(examples: Sequence[Example], school: School, start: dt.date, days: int, seed: int,
          classes: int | None = None) -> list[ParentMessage]:
    """The labelled lines as the parents' messages of `days` days from `start`, from the first `classes` classes."""
    rng = random.Random(f"corpus:{seed}")
    chosen = list(school.classes[:classes] if classes else school.classes)
    pupils = [s for s in school.students if s.guardians and s.class_id in {c.id for c in chosen}]
    if not pupils:
        raise ValueError("no class with students and guardians to write from")
    calendar = SchoolCalendar(school)
    window = [calendar.day(start + dt.timedelta(days=n)) for n in range(days)]
    drafts = []
    for order, example in enumerate(examples):
        kind, at = _when(rng, _kinds(example), window, school.zone)
        student, guardian = author(rng, pupils)
        drafts.append((at, order, kind.name, example, student.id, student.class_id, guardian))
    drafts.sort(key=lambda d: (d[0], d[1]))
    return [
        ParentMessage(index, at, class_id, student_id, guardian, example.text, kind, example.urgency.value,
                      labelled_category=example.category.value, category_hint=example.hint, writer=example.writer,
                      label_id=example.id)
        for index, (at, _, kind, example, student_id, class_id, guardian) in enumerate(drafts)
    ]
