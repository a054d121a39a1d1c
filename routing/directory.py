"""The typed school directory and policies: the YAML configuration as data.

The key names of the YAML are part of the public contract (DESIGN.md); what
Relay adds around them (hours, terms, closures, leave) is optional with
sensible defaults, so an outside tool can write a minimal configuration.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from routing.durations import Duration, parse_duration
from routing.entered_calendar import EnteredCalendar
from routing.labels import Urgency


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number in YAML is most likely minutes written without a unit; refuse to guess.
        raise ValueError(f"bad duration {value!r}: write a unit, like 45s, 2m, 4h or 1d")
    return parse_duration(str(value))


DurationField = Annotated[Duration, BeforeValidator(_duration), PlainSerializer(str, return_type=str)]


class Role(StrEnum):
    academic_affairs = "academic_affairs"
    homeroom = "homeroom"
    nurse = "nurse"
    safety_officer = "safety_officer"
    duty_leader = "duty_leader"
    principal = "principal"
    admin = "admin"


class Channel(StrEnum):
    wecom = "wecom"
    sms = "sms"
    dingtalk = "dingtalk"
    webhook = "webhook"
    miniprogram = "miniprogram"


# The one field each channel cannot do without.
CHANNEL_ADDRESS_FIELD: dict[Channel, str] = {
    Channel.wecom: "userid",
    Channel.sms: "phone",
    Channel.dingtalk: "url",
    Channel.webhook: "url",
    Channel.miniprogram: "openid",
}

_PHONE = re.compile(r"^\+?\d[\d\- ]{5,19}$")
# The longest name of a person or a class: a directory is shown on phones and in SMS; a name of
# megabytes is a broken or hostile file, not a name.
NAME_CHARS = 50
Name = Annotated[str, Field(max_length=NAME_CHARS)]


class _Model(BaseModel):
    # Keys Relay does not know are ignored at run time (an outside tool may write more than the
    # contract's keys) and reported by `relay config check` as warnings (routing.validation).
    model_config = ConfigDict(extra="ignore", frozen=True)


class Contact(_Model):
    channel: Channel
    userid: str | None = None
    phone: str | None = None
    url: str | None = None
    openid: str | None = None
    secret_env: str | None = None  # DingTalk: the variable holding this robot's own secret

    @field_validator("phone")
    @classmethod
    def _phone_shape(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("phone must be digits, optionally starting with +")
        return value

    def model_post_init(self, __context: Any) -> None:
        field = CHANNEL_ADDRESS_FIELD[self.channel]
        if not getattr(self, field):
            raise ValueError(f"a {self.channel.value} contact needs '{field}'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")

    def address(self) -> dict[str, str]:
        """The contact as plain strings, for adapters (which know nothing of this model)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}


class Leave(_Model):
    start: dt.date
    end: dt.date
    backup: str | None = None


class Staff(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: Name
    roles: tuple[Role, ...] = ()
    contacts: tuple[Contact, ...] = ()
    absent: bool = False  # marked absent today: new requests go to the backup
    backup: str | None = None  # who takes over while absent or on leave
    leave: tuple[Leave, ...] = ()

    def is_away(self, day: dt.date) -> bool:
        return self.absent or any(period.start <= day <= period.end for period in self.leave)

    def backup_on(self, day: dt.date) -> str | None:
        for period in self.leave:
            if period.start <= day <= period.end and period.backup:
                return period.backup
        return self.backup


class SchoolClass(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: Name
    academic_affairs: str
    homeroom: str | None = None


class Guardian(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: Name
    phone: str | None = None
    relation: str | None = Field(default=None, max_length=20)

    @field_validator("phone")
    @classmethod
    def _phone_shape(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("phone must be digits, optionally starting with +")
        return value


class Student(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: Name
    class_id: str
    guardians: tuple[Guardian, ...] = ()


class EscalationStep(_Model):
    # Measured from the previous step (the first from receipt), so a chain reads as a rhythm.
    after: DurationField
    # "owner", "backup" (the owner's backup), "responder" (nurse for medical, safety officer
    # for safety), "role:duty_leader" or "staff:t-zhao".
    notify: tuple[str, ...]
    # The step fires again this many times, `after` apart, while nobody acknowledges.
    repeat: int = Field(default=0, ge=0, le=10)


class UrgencyPolicy(_Model):
    ack_within: DurationField | None = None
    resolve_within: DurationField | None = None
    # An acknowledged request with no update for this long reminds the owner (P0).
    update_within: DurationField | None = None
    escalation: tuple[EscalationStep, ...] = ()


def _default_sla() -> dict[Urgency, UrgencyPolicy]:
    p = UrgencyPolicy.model_validate
    return {
        Urgency.P0: p(
            {
                "ack_within": "2m",
                "resolve_within": "2h",
                "update_within": "15m",
                "escalation": [
                    {"after": "2m", "notify": ["backup", "responder"]},
                    {"after": "2m", "notify": ["role:duty_leader", "responder"]},
                    {"after": "2m", "notify": ["role:principal", "responder"]},
                ],
            }
        ),
        Urgency.P1: p(
            {"ack_within": "30m", "resolve_within": "4h", "escalation": [{"after": "30m", "notify": ["backup"]}]}
        ),
        Urgency.P2: p({"ack_within": "1d", "resolve_within": "2d"}),
        Urgency.P3: p({"resolve_within": "3d"}),
    }


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _default_hours() -> dict[str, str]:
    return {day: "08:00-17:00" for day in WEEKDAYS[:5]}


class Term(_Model):
    name: str
    start: dt.date
    end: dt.date


class Closure(_Model):
    start: dt.date
    end: dt.date | None = None
    reason: str


_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _clock(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CLOCK.match(value):
        # YAML reads an unquoted 07:40 as a number of minutes (460): say how to write it.
        raise ValueError(f"时间格式应为 \"HH:MM\"（加引号），例如 \"07:40\" (bad time {value!r}: write \"HH:MM\")")
    return value


ClockField = Annotated[str | None, BeforeValidator(_clock)]


class RollCall(_Model):
    """The morning roll call: P1 requests received while the school is closed reach their owner as one
    digest at `at` on the next school day (with the held P2/P3 and the homeroom teachers' FYI copies),
    instead of a page each. Absent from a school: P1 pages at once at any hour, as before."""

    enabled: bool = True
    at: ClockField = None  # "HH:MM" within every school day's hours; none: each day's opening
    # After-school care runs until then on school days: a pickup change between closing and this time
    # concerns a child still on site and goes at once to whoever is on duty (duty_leader).
    after_school_until: ClockField = None

    def at_time(self) -> dt.time | None:
        return dt.time.fromisoformat(self.at) if self.at else None

    def after_school_time(self) -> dt.time | None:
        return dt.time.fromisoformat(self.after_school_until) if self.after_school_until else None


class School(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str
    timezone: str = "Asia/Shanghai"
    # The number parents call in an emergency (DESIGN.md), shown to them as a tel: link.
    phone: str | None = Field(default=None, max_length=32)
    staff: tuple[Staff, ...] = ()
    classes: tuple[SchoolClass, ...] = ()
    students: tuple[Student, ...] = ()
    sla: dict[Urgency, UrgencyPolicy] = Field(default_factory=_default_sla)
    # School hours per weekday ("mon": "08:00-17:00"); a weekday not listed has none.
    # A make-up workday (调休) uses the hours of the weekday it stands in for, or Monday's.
    hours: dict[str, str] = Field(default_factory=_default_hours)
    terms: tuple[Term, ...] = ()  # none: every workday is in term
    closures: tuple[Closure, ...] = ()
    # Contagious medical reports from one class within this window are grouped for the nurse.
    outbreak_window: DurationField = Field(default_factory=lambda: parse_duration("1h"))
    outbreak_threshold: int = Field(default=3, ge=2)
    # Official holidays and make-up workdays entered by hand (routing.entered_calendar): the file's
    # top-level `calendar:` unless the school has its own; kept in every version of the school.
    calendar: EnteredCalendar = Field(default_factory=EnteredCalendar)
    roll_call: RollCall | None = None  # the morning roll-call digest (routing.roll_call); none: off

    @field_validator("phone")
    @classmethod
    def _school_phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value.strip()):
            raise ValueError(f"bad phone {value!r}: digits, spaces and hyphens, optionally starting with +, "
                             "like 0429-5123456 or +86 429 512 3456")
        return value.strip() if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _hours_shape(cls, value: dict[str, str]) -> dict[str, str]:
        for day, span in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}: use {', '.join(WEEKDAYS)}")
            match = _HOURS.match(span)
            if not match or match.group(1, 2) >= match.group(3, 4):
                raise ValueError(f"bad hours {span!r} for {day}: write HH:MM-HH:MM, opening before closing")
        return value

    @field_validator("sla", mode="before")
    @classmethod
    def _fill_sla(cls, value: Any) -> Any:
        # A school that writes only P0 keeps the defaults for the other urgencies.
        if isinstance(value, dict):
            merged: dict[Any, Any] = {u.value: p.model_dump(mode="json") for u, p in _default_sla().items()}
            merged.update(value)
            return merged
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # Lookups. Snapshots are immutable, so the indexes are built once per snapshot.
    def staff_member(self, staff_id: str) -> Staff | None:
        return _index(self).staff.get(staff_id)

    def school_class(self, class_id: str) -> SchoolClass | None:
        return _index(self).classes.get(class_id)

    def student(self, student_id: str) -> Student | None:
        return _index(self).students.get(student_id)

    def guardian(self, guardian_id: str) -> Guardian | None:
        return _index(self).guardians.get(guardian_id)

    def children_of(self, guardian_id: str) -> tuple[str, ...]:
        return _index(self).children.get(guardian_id, ())

    def with_role(self, role: Role) -> tuple[Staff, ...]:
        return tuple(s for s in self.staff if role in s.roles)


class _Index:
    def __init__(self, school: School) -> None:
        self.staff = {s.id: s for s in school.staff}
        self.classes = {c.id: c for c in school.classes}
        self.students = {s.id: s for s in school.students}
        self.guardians: dict[str, Guardian] = {}
        children: dict[str, list[str]] = {}
        for student in school.students:
            for guardian in student.guardians:
                self.guardians.setdefault(guardian.id, guardian)
                children.setdefault(guardian.id, []).append(student.id)
        self.children = {g: tuple(c) for g, c in children.items()}


_indexes: dict[int, tuple[School, _Index]] = {}


def _index(school: School) -> _Index:
    # Keyed by identity and holding the school itself, so an entry never outlives its snapshot's id.
    entry = _indexes.get(id(school))
    if entry is None or entry[0] is not school:
        if len(_indexes) > 256:
            _indexes.clear()
        entry = (school, _Index(school))
        _indexes[id(school)] = entry
    return entry[1]


class Directory(_Model):
    schools: tuple[School, ...] = Field(min_length=1)
    # The holidays and make-up workdays the file's schools share (DESIGN.md: School YAML).
    calendar: EnteredCalendar | None = None

    @model_validator(mode="after")
    def _share_the_calendar(self) -> Directory:
        if self.calendar is not None:
            shared = tuple(s if "calendar" in s.model_fields_set else s.model_copy(update={"calendar": self.calendar})
                           for s in self.schools)
            object.__setattr__(self, "schools", shared)  # frozen: set once, while validating
        return self

    def school(self, school_id: str) -> School | None:
        for school in self.schools:
            if school.id == school_id:
                return school
        return None
