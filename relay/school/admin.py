"""School administration at run time: what the admin pages and /v1/admin do, in one place.

Every change to the directory is one new version, made by relay.base.directory.publish_school
(checked like `relay config check`, switched in one transaction) and seen by every process
within a second. Each change is written to the school's administration log. Moving open
requests to someone else goes through relay.core.actions.reassign, request by request, so each
request's timeline says who moved it and why.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from typing import Any

import yaml

from relay.base import clock, keys, store
from relay.base.directory import ConfigError, Published, current_version, publish_school, restore
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.core import actions, audit
from relay.school.roster import CheckedRoster, RosterProblem, check_roster
from relay.school.roster_files import RosterFileError, read_upload
from routing.calendar import missing_years
from routing.directory import Leave, Role, School, Staff
from routing.validation import Problem, check_config

STAGED_SECONDS = 3600  # a checked import waits this long for someone to apply it
LOG_LENGTH = 1000
ADMIN_ROLES = (Role.admin, Role.principal)
# What the settings editor may change; the roster changes through the import, leave through its page.
SETTINGS = ("name", "timezone", "phone", "hours", "terms", "closures", "sla", "outbreak_window", "outbreak_threshold",
            "calendar")


class AdminError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def may_administer(member: Staff) -> bool:
    return any(role in member.roles for role in ADMIN_ROLES)


def record(runtime: Runtime, school_id: str, by: str, action: str, **detail: Any) -> None:
    """Who changed what: one entry in the school's audit stream (`admin.<action>`, relay/core/audit.py), and the
    details (version, dates, counts; never a phone number or a child's name) in the administration log."""
    entry = {"at": clock.now(), "by": by, "action": action, **detail}
    with runtime.redis.pipeline(transaction=True) as pipe:
        audit.record(pipe, school_id, by, f"admin.{action}", "")
        pipe.lpush(keys.admin_log(school_id), json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(keys.admin_log(school_id), 0, LOG_LENGTH - 1)
        pipe.execute()
    log.info("directory_changed", school_id=school_id, staff_id=by, action=action,
             version=detail.get("version"))


def admin_log(runtime: Runtime, school_id: str, limit: int = 50) -> list[dict[str, Any]]:
    return [json.loads(e) for e in runtime.redis.lrange(keys.admin_log(school_id), 0, limit - 1)]


def current(runtime: Runtime, school_id: str) -> tuple[int, School]:
    found = current_version(runtime.redis, school_id)
    if found is None:
        raise AdminError("no_directory", "本校还没有发布过目录 (the school has no directory yet)")
    return found


def today_in(school: School) -> dt.date:
    return dt.datetime.fromtimestamp(clock.now(), school.zone).date()


def _published(runtime: Runtime, school_id: str, by: str, action: str, done: Published, **detail: Any) -> Published:
    runtime.directories.reload()  # this process shows the change at once; others within a second
    if done.changed:
        record(runtime, school_id, by, action, version=done.version, previous_version=done.previous, **detail)
    return done


def validated(document: dict[str, Any]) -> School:
    directory, problems = check_config({"schools": [document]})
    if directory is None:
        raise ConfigError([Problem(p.where.removeprefix("schools[0]."), p.message) for p in problems])
    return directory.schools[0]


def replace_school(runtime: Runtime, school_id: str, document: dict[str, Any], by: str) -> Published:
    """A whole school (as a configuration file writes it) becomes the new version."""
    done = publish_school(runtime.redis, school_id, lambda _: validated(document), by, "replaced")
    return _published(runtime, school_id, by, "directory_replaced", done)


# Roster import ----------------------------------------------------------------------------------


def stage_import(runtime: Runtime, school_id: str, files: list[tuple[str, str, bytes]],
                 by: str) -> tuple[CheckedRoster, str | None, int]:
    """Check an upload against the current version; a clean one is kept for `apply_import`."""
    version, school = current(runtime, school_id)
    try:
        checked = check_roster(school, read_upload(files), runtime.settings.allowed_private())
    except RosterFileError as exc:
        return CheckedRoster(None, [RosterProblem("文件", None, None, str(exc))]), None, version
    if checked.school is None:
        return checked, None, version
    import_id = secrets.token_hex(12)
    staged = {"based_on": version, "by": by, "summary": checked.summary,
              **{part: [item.model_dump(mode="json") for item in getattr(checked.school, part)]
                 for part in ("staff", "classes", "students")}}
    runtime.redis.set(keys.staged_import(school_id, import_id), json.dumps(staged, ensure_ascii=False),
                      ex=STAGED_SECONDS)
    return checked, import_id, version


def staged_summary(runtime: Runtime, school_id: str, import_id: str) -> dict[str, Any] | None:
    raw = runtime.redis.get(keys.staged_import(school_id, import_id)) if import_id.isalnum() else None
    return json.loads(raw) if raw else None


def apply_import(runtime: Runtime, school_id: str, import_id: str, by: str) -> Published:
    """The checked roster becomes the new version; settings, leave and absence come from the version current now."""
    staged = staged_summary(runtime, school_id, import_id)
    if staged is None:
        raise AdminError("import_expired", "这次导入已过期或已应用，请重新上传并检查 (the import expired or was applied)")

    def change(school: School | None) -> School:
        if school is None:
            raise AdminError("no_directory", "本校还没有发布过目录 (the school has no directory yet)")
        now = {s.id: s for s in school.staff}
        staff = [dict(member, leave=now[member["id"]].model_dump(mode="json")["leave"],
                      absent=now[member["id"]].absent) if member["id"] in now else member
                 for member in staged["staff"]]
        document = school.model_dump(mode="json")
        document.update(staff=staff, classes=staged["classes"], students=staged["students"])
        return validated(document)

    done = publish_school(runtime.redis, school_id, change, by, "import")
    runtime.redis.delete(keys.staged_import(school_id, import_id))
    return _published(runtime, school_id, by, "roster_import", done, checked_against=staged["based_on"],
                      summary=staged["summary"])


def restore_version(runtime: Runtime, school_id: str, version: int, by: str) -> Published:
    return _published(runtime, school_id, by, "restore", restore(runtime.redis, school_id, version, by),
                      restored=version)


# Leave and reassignment -------------------------------------------------------------------------


def _replace_staff(school: School, member: Staff) -> School:
    document = school.model_dump(mode="json")
    document["staff"] = [member.model_dump(mode="json") if s["id"] == member.id else s for s in document["staff"]]
    return validated(document)


def _member(school: School | None, staff_id: str) -> tuple[School, Staff]:
    member = school.staff_member(staff_id) if school else None
    if school is None or member is None:
        raise AdminError("unknown_staff", f"未找到教职工 {staff_id} (no such staff member)")
    return school, member


def add_leave(runtime: Runtime, school_id: str, staff_id: str, start: dt.date, end: dt.date, backup: str,
              by: str) -> Published:
    """From `start` to `end` (inclusive) the person's new requests go to `backup`."""
    if end < start:
        raise AdminError("bad_dates", "结束日期早于开始日期 (the leave ends before it starts)")
    if backup == staff_id:
        raise AdminError("bad_backup", "代班人不能是本人 (the backup cannot be the person on leave)")

    def change(found: School | None) -> School:
        school, member = _member(found, staff_id)
        _member(school, backup)
        for period in member.leave:
            if period.start <= end and start <= period.end:
                raise AdminError("overlapping_leave", f"与已有的请假 {period.start}–{period.end} 重叠 (overlaps a leave)")
        leave = tuple(sorted((*member.leave, Leave(start=start, end=end, backup=backup)), key=lambda p: p.start))
        return _replace_staff(school, member.model_copy(update={"leave": leave}))

    done = publish_school(runtime.redis, school_id, change, by, f"leave:{staff_id}")
    return _published(runtime, school_id, by, "leave_added", done, staff_id=staff_id, start=start.isoformat(),
                      end=end.isoformat(), backup=backup)


def cancel_leave(runtime: Runtime, school_id: str, staff_id: str, start: dt.date, by: str) -> Published:
    def change(found: School | None) -> School:
        school, member = _member(found, staff_id)
        leave = tuple(p for p in member.leave if p.start != start)
        if len(leave) == len(member.leave):
            raise AdminError("no_such_leave", f"{member.name} 没有从 {start} 开始的请假 (no such leave)")
        return _replace_staff(school, member.model_copy(update={"leave": leave}))

    done = publish_school(runtime.redis, school_id, change, by, f"leave-cancelled:{staff_id}")
    return _published(runtime, school_id, by, "leave_cancelled", done, staff_id=staff_id, start=start.isoformat())


def move_open(runtime: Runtime, school: School, owner: str, to: str, by: str, reason: str,
              class_id: str | None = None) -> list[str]:
    """Reassign `owner`'s open requests (of one class, if given) to `to`, each with `reason` on its timeline."""
    if school.staff_member(to) is None:
        raise AdminError("unknown_staff", f"未找到教职工 {to} (no such staff member)")
    theirs = [r for r in store.open_queue(runtime.redis, school.id, limit=100_000)
              if r.owner == owner and (class_id is None or r.class_id == class_id)]
    # Someone removed from the directory may still own open requests (that is when they need moving);
    # an id that is neither staff here nor an owner here is another school's, or nobody's.
    if school.staff_member(owner) is None and not theirs:
        raise AdminError("unknown_staff", f"未找到教职工 {owner} (no such staff member)")
    moved = []
    for request in theirs:
        if actions.reassign(runtime, school, request.id, by, to, reason) is not None:
            moved.append(request.id)
    if moved:
        record(runtime, school.id, by, "requests_moved", owner=owner, to=to, count=len(moved), class_id=class_id)
    return moved


def leave_reason(member: Staff, period: Leave, backup: Staff) -> str:
    return f"{member.name}请假（{period.start}至{period.end}），由{backup.name}代班"


def move_for_leave(runtime: Runtime, school: School, staff_id: str, by: str, today: dt.date) -> list[str]:
    """The open requests of someone on leave today go to that leave's backup."""
    member = school.staff_member(staff_id)
    if member is None:
        raise AdminError("unknown_staff", f"未找到教职工 {staff_id} (no such staff member)")
    period = next((p for p in member.leave if p.start <= today <= p.end), None)
    backup = school.staff_member(period.backup) if period and period.backup else None
    if period is None or backup is None:
        raise AdminError("not_on_leave", "此人今天不在请假期内，未转交请求 (not on leave today)")
    return move_open(runtime, school, staff_id, backup.id, by, leave_reason(member, period, backup))


def reassign_class(runtime: Runtime, school_id: str, class_id: str, to: str, by: str,
                   move_requests: bool) -> tuple[Published, list[str]]:
    """A class gets another academic-affairs teacher; optionally its open requests follow."""
    previous: list[str] = []

    def change(found: School | None) -> School:
        school, member = _member(found, to)
        school_class = school.school_class(class_id)
        if school_class is None:
            raise AdminError("unknown_class", f"未找到班级 {class_id} (no such class)")
        if Role.academic_affairs not in member.roles:
            raise AdminError("not_academic_affairs", f"{member.name} 没有「教务」角色 (not an academic-affairs teacher)")
        previous[:] = [school_class.academic_affairs]
        document = school.model_dump(mode="json")
        for item in document["classes"]:
            if item["id"] == class_id:
                item["academic_affairs"] = to
        return validated(document)

    done = _published(runtime, school_id, by, "class_reassigned",
                      publish_school(runtime.redis, school_id, change, by, f"class:{class_id}"),
                      class_id=class_id, academic_affairs=to, previous=previous[0])
    moved: list[str] = []
    if move_requests and previous[0] != to:
        school_class = done.school.school_class(class_id)
        name = school_class.name if school_class else class_id
        teacher = done.school.staff_member(to)
        reason = f"{name}改由{teacher.name if teacher else to}负责"
        moved = move_open(runtime, done.school, previous[0], to, by, reason, class_id=class_id)
    return done, moved


# Hours, terms, closures, SLA --------------------------------------------------------------------


def settings_of(school: School) -> dict[str, Any]:
    document = school.model_dump(mode="json", exclude_none=True)
    return {key: document[key] for key in SETTINGS if key in document}


def settings_yaml(school: School) -> str:
    return yaml.safe_dump(settings_of(school), allow_unicode=True, sort_keys=False, width=200)


def parse_settings(text: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第{mark.line + 1}行第{mark.column + 1}列" if mark else "YAML"
        raise ConfigError([Problem(where, f"YAML 格式错误: {getattr(exc, 'problem', exc)}")]) from exc
    if not isinstance(raw, dict):
        raise ConfigError([Problem("(top)", "应为 YAML 映射，例如 hours: / closures: / sla: (a mapping)")])
    return raw


def update_settings(runtime: Runtime, school_id: str, settings: dict[str, Any], by: str) -> Published:
    """Replace the given settings (each key whole); the roster and leave stay as they are."""
    unknown = [key for key in settings if key not in SETTINGS]
    if unknown:
        raise ConfigError([Problem(str(key), f"这里不能修改 (not a setting: use one of {', '.join(SETTINGS)})")
                           for key in unknown])

    def change(school: School | None) -> School:
        if school is None:
            raise AdminError("no_directory", "本校还没有发布过目录 (the school has no directory yet)")
        return validated({**school.model_dump(mode="json"), **settings})

    done = publish_school(runtime.redis, school_id, change, by, "settings")
    return _published(runtime, school_id, by, "settings_changed", done, keys=sorted(settings))


# Official holidays and make-up workdays (routing.entered_calendar) ---------------------------------


def missing_calendar_years(school: School) -> list[int]:
    """The years the school will plan soon with no holiday data (the banner on every /admin page)."""
    return missing_years(school, today_in(school))


def _with_calendar(school: School | None, change: Callable[[dict[str, Any]], None]) -> School:
    if school is None:
        raise AdminError("no_directory", "本校还没有发布过目录 (the school has no directory yet)")
    document = school.model_dump(mode="json")
    calendar = document["calendar"]
    change(calendar)
    try:
        return validated(document)
    except ConfigError as exc:  # say it in the page's words: the form's fields, not the YAML's places
        raise ConfigError([Problem(p.where.replace("calendar.", "", 1), p.message) for p in exc.problems]) from exc


def add_holiday(runtime: Runtime, school_id: str, name: str, start: dt.date, end: dt.date, by: str) -> Published:
    """An official holiday (one day or a span), e.g. 春节 2027-02-05 to 2027-02-11."""
    entry = {"date": start.isoformat()} if start == end else {"from": start.isoformat(), "to": end.isoformat()}

    def change(found: School | None) -> School:
        return _with_calendar(found, lambda c: c["holidays"].append({**entry, "name": name.strip()}))

    done = publish_school(runtime.redis, school_id, change, by, "calendar")
    return _published(runtime, school_id, by, "calendar_changed", done, start=start.isoformat(), end=end.isoformat())


def add_workday(runtime: Runtime, school_id: str, name: str, day: dt.date, by: str) -> Published:
    """A make-up workday (调休): a Saturday or Sunday worked, e.g. 春节调休 2027-02-20."""

    def change(found: School | None) -> School:
        return _with_calendar(found, lambda c: c["workdays"].append({"date": day.isoformat(), "name": name.strip()}))

    done = publish_school(runtime.redis, school_id, change, by, "calendar")
    return _published(runtime, school_id, by, "calendar_changed", done, start=day.isoformat())


def remove_calendar_day(runtime: Runtime, school_id: str, kind: str, start: dt.date, by: str) -> Published:
    """Remove the holiday that starts on `start`, or the make-up workday on it."""
    if kind not in ("holidays", "workdays"):
        raise AdminError("bad_kind", "只能删除节假日或调休日 (holidays or workdays)")

    def change(found: School | None) -> School:
        def drop(calendar: dict[str, Any]) -> None:
            kept = [e for e in calendar[kind] if (e.get("from") or e.get("date")) != start.isoformat()]
            if len(kept) == len(calendar[kind]):
                raise AdminError("no_such_day", f"没有 {start} 的这一项 (nothing entered on {start})")
            calendar[kind] = kept

        return _with_calendar(found, drop)

    done = publish_school(runtime.redis, school_id, change, by, "calendar")
    return _published(runtime, school_id, by, "calendar_changed", done, start=start.isoformat(), removed=kind)
