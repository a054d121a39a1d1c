"""Check a school configuration and name every problem with its place in the file.

`relay config check` prints these; the administration pages show the same list.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from routing.directory import Directory, Role, School


@dataclass(frozen=True)
class Problem:
    where: str  # e.g. "schools[0].students[12].class_id"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _place(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


def check_config(raw: Any) -> tuple[Directory | None, list[Problem]]:
    """Validate raw YAML data; return the directory when it is sound, and every problem found."""
    if not isinstance(raw, dict):
        return None, [Problem("(top)", "the file must be a mapping with a 'schools' list")]
    try:
        directory = Directory.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if loc == ("schools",) and error["type"] == "too_short" and raw.get("schools"):
                continue  # pydantic's echo of a school that failed on its own: reported at its place
            message = error["msg"].removeprefix("Value error, ")
            problems.append(Problem(_place(loc), message))
        # Cross-references are still worth reporting where the shapes were fine.
        problems += _cross_check_raw(raw)
        return None, _unique(problems)
    problems = []
    for index, school in enumerate(directory.schools):
        problems += _cross_check(school, f"schools[{index}]")
    problems += _duplicates([s.id for s in directory.schools], "schools", "school")
    return (directory if not problems else None), problems


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def _duplicates(ids: list[str], where: str, what: str) -> list[Problem]:
    counts = Counter(ids)
    problems = []
    for index, item in enumerate(ids):
        if counts[item] > 1:
            problems.append(Problem(f"{where}[{index}].id", f"duplicate {what} id {item!r}"))
    return problems


def _cross_check_raw(raw: dict[str, Any]) -> list[Problem]:
    """Best-effort references check on data that did not fully validate."""
    problems: list[Problem] = []
    schools = raw.get("schools")
    if not isinstance(schools, list):
        return problems
    for index, school in enumerate(schools):
        if not isinstance(school, dict):
            continue
        try:
            partial = School.model_construct(
                id=str(school.get("id", "")),
                staff=tuple(_lenient(school.get("staff"))),
                classes=tuple(_lenient(school.get("classes"))),
                students=tuple(_lenient(school.get("students"))),
            )
            problems += _references(partial, f"schools[{index}]", lenient=True)
        except Exception:  # a report of the shapes is already on its way; this pass is a bonus
            continue
    return problems


class _Loose:
    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    def __getattr__(self, name: str) -> Any:
        return None


def _lenient(items: Any) -> list[Any]:
    if not isinstance(items, list):
        return []
    return [_Loose(i) if isinstance(i, dict) else _Loose({}) for i in items]


def _cross_check(school: School, where: str) -> list[Problem]:
    return _references(school, where, lenient=False)


def _references(school: Any, where: str, lenient: bool) -> list[Problem]:
    problems: list[Problem] = []
    staff_ids = [s.id for s in school.staff]
    class_ids = [c.id for c in school.classes]
    student_ids = [s.id for s in school.students]
    problems += _duplicates(staff_ids, f"{where}.staff", "staff")
    problems += _duplicates(class_ids, f"{where}.classes", "class")
    problems += _duplicates(student_ids, f"{where}.students", "student")
    staff_by_id = {s.id: s for s in school.staff}

    def has_role(staff_id: str, role: Role) -> bool:
        member = staff_by_id.get(staff_id)
        roles = getattr(member, "roles", None) or ()
        return any(str(getattr(r, "value", r)) == role.value for r in roles)

    for i, cls in enumerate(school.classes):
        place = f"{where}.classes[{i}]"
        if not cls.academic_affairs:
            problems.append(Problem(f"{place}.academic_affairs", f"class {cls.id!r} has no academic-affairs teacher"))
        elif cls.academic_affairs not in staff_by_id:
            problems.append(Problem(f"{place}.academic_affairs", f"unknown staff {cls.academic_affairs!r}"))
        elif not has_role(cls.academic_affairs, Role.academic_affairs):
            problems.append(
                Problem(f"{place}.academic_affairs", f"{cls.academic_affairs!r} does not have the academic_affairs role")
            )

    guardian_phones: dict[str, str] = {}
    for i, student in enumerate(school.students):
        place = f"{where}.students[{i}]"
        if student.class_id and student.class_id not in class_ids:
            problems.append(Problem(f"{place}.class_id", f"unknown class {student.class_id!r}"))
        for j, guardian in enumerate(student.guardians or ()):
            gid = guardian.get("id") if isinstance(guardian, dict) else guardian.id
            phone = guardian.get("phone") if isinstance(guardian, dict) else guardian.phone
            if gid and phone:
                known = guardian_phones.setdefault(gid, phone)
                if known != phone:
                    problems.append(
                        Problem(f"{place}.guardians[{j}].phone", f"guardian {gid!r} has two different phones")
                    )

    for i, member in enumerate(school.staff):
        if member.backup and member.backup not in staff_by_id:
            problems.append(Problem(f"{where}.staff[{i}].backup", f"unknown staff {member.backup!r}"))
        for j, period in enumerate(getattr(member, "leave", None) or ()):
            backup = period.get("backup") if isinstance(period, dict) else period.backup
            if backup and backup not in staff_by_id:
                problems.append(Problem(f"{where}.staff[{i}].leave[{j}].backup", f"unknown staff {backup!r}"))

    if not lenient:
        for urgency, policy in school.sla.items():
            for k, step in enumerate(policy.escalation):
                for n, target in enumerate(step.notify):
                    place = f"{where}.sla.{urgency.value}.escalation[{k}].notify[{n}]"
                    problems += _target_problems(target, place, staff_by_id)
        for i, term in enumerate(school.terms):
            if term.end < term.start:
                problems.append(Problem(f"{where}.terms[{i}]", "term ends before it starts"))
        problems += _roll_call_problems(school, f"{where}.roll_call")
    return problems


def _roll_call_problems(school: School, place: str) -> list[Problem]:
    """The roll call must fall in every school day's hours (make-up days borrow a weekday's), and after-school
    care must end after every closing: otherwise a digest would page someone out of hours, or a window
    would never open."""
    roll_call = school.roll_call
    if roll_call is None:
        return []
    problems: list[Problem] = []
    at, until = roll_call.at_time(), roll_call.after_school_time()
    for day, span in school.hours.items():
        opening, closing = (dt.time.fromisoformat(t) for t in span.split("-"))
        if at is not None and not opening <= at < closing:
            problems.append(Problem(f"{place}.at", f"点名时间 {roll_call.at} 不在{_WEEKDAY_ZH[day]}的在校时间 {span} 内 "
                                                   f"(the roll call must fall within the school's hours on {day})"))
        if until is not None and until <= closing:
            problems.append(Problem(f"{place}.after_school_until",
                                    f"课后看护结束时间 {roll_call.after_school_until} 不晚于{_WEEKDAY_ZH[day]}的放学时间 "
                                    f"{closing:%H:%M} (after-school care must end after closing on {day})"))
    return problems


_WEEKDAY_ZH = {"mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五", "sat": "周六", "sun": "周日"}


def _target_problems(target: str, place: str, staff_by_id: dict[str, Any]) -> list[Problem]:
    if target in ("owner", "backup", "responder"):
        return []
    kind, _, name = target.partition(":")
    if kind == "role":
        try:
            Role(name)
        except ValueError:
            return [Problem(place, f"unknown role {name!r}")]
        # A role nobody holds yet is not an error: the step notifies whoever holds it when it fires.
        return []
    if kind == "staff":
        return [] if name in staff_by_id else [Problem(place, f"unknown staff {name!r}")]
    return [Problem(place, f"unknown target {target!r}: write owner, backup, responder, role:NAME or staff:ID")]


def unknown_keys(raw: Any, model: type[BaseModel] = Directory, where: str = "") -> list[Problem]:
    """Keys the configuration has that Relay does not read: most often a typo (`acadmic_affairs`)."""
    if not isinstance(raw, dict) or model.model_config.get("extra") == "forbid":
        return []  # such a model refuses unknown keys itself, with an error at their place
    found = []
    for key, value in raw.items():
        place = f"{where}.{key}" if where else str(key)
        field = model.model_fields.get(str(key))
        if field is None:
            found.append(Problem(place, "unknown key: ignored (a typo?)"))
            continue
        for inner in _models_in(field.annotation):
            if isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    found += unknown_keys(item, inner, f"{place}[{i}]")
            elif isinstance(value, dict) and key == "sla":
                for urgency, policy in value.items():
                    found += unknown_keys(policy, inner, f"{place}.{urgency}")
            else:
                found += unknown_keys(value, inner, place)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation like tuple[Staff, ...] or dict[Urgency, UrgencyPolicy]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def warnings_for(directory: Directory) -> list[Problem]:
    """What is worth fixing but does not stop a school from running.

    A homeroom teacher who is not (yet) in the staff list only loses the FYI copies of absences and
    pickup changes; refusing the whole directory for it would stop every parent's request instead.
    """
    warnings = []
    for i, school in enumerate(directory.schools):
        for j, cls in enumerate(school.classes):
            if cls.homeroom and school.staff_member(cls.homeroom) is None:
                warnings.append(Problem(f"schools[{i}].classes[{j}].homeroom",
                                        f"unknown staff {cls.homeroom!r}: no FYI copies for this class"))
    return warnings
