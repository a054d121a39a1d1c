"""The administration forms for hours, closures, the school's phone and the SLA, read into settings.

Each form is read whole and checked here, field by field, with problems in Chinese named after the
form's own labels ("周一", "P0 确认时限"); only a form with no problem becomes settings, which then go
through relay.school.admin.update_settings (the same validated path as the YAML), so nothing is ever
applied half-way.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from relay.base.directory import ConfigError
from routing.directory import WEEKDAYS, School, UrgencyPolicy
from routing.durations import Duration
from routing.labels import Urgency
from routing.validation import Problem

WEEKDAY_WORDS = dict(zip(WEEKDAYS, ("周一", "周二", "周三", "周四", "周五", "周六", "周日"), strict=True))
UNIT_WORDS = {"s": "秒", "m": "分钟", "h": "小时", "d": "天"}
_UNITS = {"s": "s", "秒": "s", "m": "m", "分": "m", "分钟": "m", "h": "h", "小时": "h", "时": "h", "d": "d", "天": "d"}
_DURATION = re.compile(r"^\s*(\d{1,4})\s*(s|m|h|d|秒|分钟|分|小时|时|天)\s*$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_PHONE = re.compile(r"^\+?[\d -]{3,31}$")
# Whom an escalation step may page, in the form's words (a directory may hold others, e.g. staff:t-zhao).
TARGETS = {"owner": "负责人", "backup": "负责人的代班人", "responder": "校医/安全员（按类别）",
           "role:duty_leader": "值班领导", "role:principal": "校长"}
STEPS_SHOWN = 4  # escalation rows per urgency on the form (blank ones are ignored)
REASON_CHARS = 40


class Form(Mapping[str, str]):
    """What the page's form sent, as plain strings (the multi-valued checkboxes through `all`)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._first: dict[str, str] = {}
        for key, value in self._pairs:
            self._first.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Any:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def text(self, key: str) -> str:
        return str(self._first.get(key, "")).strip()

    def all(self, key: str) -> list[str]:
        return [value for name, value in self._pairs if name == key]


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError(problems)


def duration_words(value: Duration | None) -> str:
    """`2m` → "2分钟"; what the form shows and reads back."""
    return "" if value is None else f"{value.amount}{UNIT_WORDS[value.unit]}"


def read_duration(text: str, where: str, problems: list[Problem], required: bool = False) -> str | None:
    """"2分钟", "30分", "4小时", "1天" or "2m" → "2m"; a problem in Chinese otherwise."""
    if not text:
        if required:
            problems.append(Problem(where, "请填写时长，例如 2分钟、30分钟、4小时 或 1天"))
        return None
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        problems.append(Problem(where, f"“{text}”不是有效的时长：请写一个正整数加单位，例如 2分钟、30分钟、4小时 或 1天"))
        return None
    return f"{int(match.group(1))}{_UNITS[match.group(2)]}"


# Hours --------------------------------------------------------------------------------------------


def hours_rows(school: School) -> list[dict[str, str]]:
    rows = []
    for day in WEEKDAYS:
        span = school.hours.get(day, "")
        opens, _, closes = span.partition("-")
        rows.append({"day": day, "words": WEEKDAY_WORDS[day], "opens": opens, "closes": closes})
    return rows


def read_hours(form: Form) -> dict[str, str]:
    """One row per weekday: opening and closing time, or both empty for a day without school."""
    hours: dict[str, str] = {}
    problems: list[Problem] = []
    for day in WEEKDAYS:
        opens, closes = form.text(f"{day}_opens"), form.text(f"{day}_closes")
        where = WEEKDAY_WORDS[day]
        if not opens and not closes:
            continue
        bad = [v for v in (opens, closes) if not _TIME.match(v)]
        if bad:
            problems.append(Problem(where, f"“{bad[0] or '（空）'}”不是有效的时间：上学和放学时间都要写成 时:分，例如 07:40 和 16:30；"
                                           "不上学的日子两格都留空"))
        elif opens >= closes:
            problems.append(Problem(where, f"放学时间 {closes} 要晚于上学时间 {opens}"))
        else:
            hours[day] = f"{opens}-{closes}"
    _refuse(problems)
    if not hours:
        _refuse([Problem("作息", "至少要有一天上学：否则所有常规请求都会无限期等待")])
    return hours


# Closures -----------------------------------------------------------------------------------------


def _date(text: str, where: str, problems: list[Problem]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.append(Problem(where, f"“{text or '（空）'}”不是有效的日期，请用日期选择器或写成 2027-03-01"))
        return None


def add_closure(school: School, form: Form) -> list[dict[str, Any]]:
    """The school's closures with one more (a day or a span, with its reason)."""
    problems: list[Problem] = []
    start = _date(form.text("start"), "开始日期", problems)
    end = _date(form.text("end"), "结束日期", problems) if form.text("end") else None
    reason = form.text("reason")
    if not reason:
        problems.append(Problem("原因", "请写停课原因，例如：流感停课、考场"))
    elif len(reason) > REASON_CHARS:
        problems.append(Problem("原因", f"原因最多 {REASON_CHARS} 个字"))
    if start and end and end < start:
        problems.append(Problem("结束日期", "结束日期早于开始日期"))
    _refuse(problems)
    closures = [c.model_dump(mode="json", exclude_none=True) for c in school.closures]
    entry: dict[str, Any] = {"start": str(start), "reason": reason}
    if end and end != start:
        entry["end"] = str(end)
    return [*closures, entry]


def remove_closure(school: School, form: Form) -> list[dict[str, Any]]:
    start = form.text("start")
    kept = [c.model_dump(mode="json", exclude_none=True) for c in school.closures if str(c.start) != start]
    if len(kept) == len(school.closures):
        _refuse([Problem("停课日", f"没有从 {start or '（空）'} 开始的停课")])
    return kept


# The school's phone -------------------------------------------------------------------------------


def read_phone(form: Form) -> str | None:
    """Digits, spaces and hyphens, optionally a leading +; empty clears it."""
    phone = form.text("phone")
    if not phone:
        return None
    if len(phone) > 32 or not _PHONE.match(phone) or sum(c.isdigit() for c in phone) < 3:
        _refuse([Problem("学校电话", f"“{phone}”不是有效的电话号码：只能有数字、空格和连字符，可以以 + 开头，最多 32 位，例如 0429-5123456")])
    return phone


# SLA ----------------------------------------------------------------------------------------------


def sla_rows(school: School) -> list[dict[str, Any]]:
    """Per urgency: the two time limits and the escalation steps, each with its ticked targets."""
    rows = []
    for urgency in Urgency:
        policy = school.sla.get(urgency) or UrgencyPolicy()
        steps = [{"after": duration_words(step.after), "notify": list(step.notify)} for step in policy.escalation]
        steps += [{"after": "", "notify": []}] * (len(steps) < STEPS_SHOWN)  # one blank row to add a step
        targets = dict(TARGETS)
        for step in policy.escalation:  # targets the form does not offer are kept, and shown by their name
            for target in step.notify:
                targets.setdefault(target, _target_words(school, target))
        rows.append({"urgency": urgency.value, "ack_within": duration_words(policy.ack_within),
                     "resolve_within": duration_words(policy.resolve_within), "steps": steps, "targets": targets})
    return rows


def _target_words(school: School, target: str) -> str:
    kind, _, value = target.partition(":")
    if kind == "staff":
        member = school.staff_member(value)
        return member.name if member else value
    return target


def read_sla(school: School, form: Form) -> dict[str, Any]:
    """The whole SLA from the form; what the form does not show (update_within, repeats) is kept."""
    problems: list[Problem] = []
    sla: dict[str, Any] = {}
    for urgency in Urgency:
        u = urgency.value
        current = (school.sla.get(urgency) or UrgencyPolicy()).model_dump(mode="json", exclude_none=True)
        policy = {k: v for k, v in current.items() if k not in ("ack_within", "resolve_within", "escalation")}
        ack = read_duration(form.text(f"{u}_ack_within"), f"{u} 确认时限", problems, required=urgency is Urgency.P0)
        resolve = read_duration(form.text(f"{u}_resolve_within"), f"{u} 办结时限", problems)
        if ack:
            policy["ack_within"] = ack
        if resolve:
            policy["resolve_within"] = resolve
        steps = []
        had = current.get("escalation", [])
        for n in range(1, STEPS_SHOWN + 1):
            after_text = form.text(f"{u}_step{n}_after")
            notify = [t for t in form.all(f"{u}_step{n}_notify") if t]
            if not after_text and not notify:
                continue
            where = f"{u} 第{n}级升级"
            after = read_duration(after_text, where, problems, required=True)
            if not notify:
                problems.append(Problem(where, "请至少勾选一个通知对象"))
            if after and notify:
                repeat = had[n - 1].get("repeat", 0) if n <= len(had) else 0  # not on the form: kept as it was
                steps.append({"after": after, "notify": notify, **({"repeat": repeat} if repeat else {})})
        if steps and not ack:
            problems.append(Problem(f"{u} 确认时限", "有升级步骤时必须填写确认时限"))
        policy["escalation"] = steps
        sla[u] = policy
    _refuse(problems)
    return sla
