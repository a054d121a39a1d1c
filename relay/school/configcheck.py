"""`relay config check`: shapes and references (routing.validation), contact addresses (relay.base.outbound), the
calendar, and channel credentials."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from relay.base import shards
from relay.base.outbound import contact_problems
from relay.base.settings import get_settings
from routing.calendar import missing_years, unknown_years
from routing.directory import Directory
from routing.validation import Problem, check_config, unknown_keys, warnings_for


def _channel_problems(directory: Directory) -> list[Problem]:
    settings = get_settings()
    needs = {
        "wecom": bool(settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id),
        "sms": bool(settings.sms_provider and settings.sms_access_key_id and settings.sms_access_key_secret
                    and settings.sms_sign_name and settings.sms_template_id),
        "miniprogram": bool(settings.wechat_app_id and settings.wechat_app_secret),
    }
    problems = []
    for i, school in enumerate(directory.schools):
        used = {c.channel.value for s in school.staff for c in s.contacts}
        for channel in sorted(used):
            if channel in needs and not needs[channel]:
                problems.append(Problem(f"schools[{i}].staff[*].contacts",
                                        f"channel {channel!r} is used but its credentials are not configured "
                                        f"(set the RELAY_{'SMS' if channel == 'sms' else channel.upper()}_* variables); "
                                        "under relay dev it goes to the dev outbox"))
    return problems


def calendar_warnings(raw: dict[str, object], directory: Directory, today: dt.date) -> list[Problem]:
    """Said, not guessed: a year without holiday data is a warning (its due times are estimates), so that a
    school can still start the term; so is a make-up workday on a weekday, which changes nothing."""
    warnings = []
    if directory.calendar is not None:
        for index in directory.calendar.weekday_workdays():
            day = directory.calendar.workdays[index].date
            warnings.append(Problem(f"calendar.workdays[{index}].date",
                                    f"{day} is a {day:%A}, a workday anyway: a make-up workday (调休) is a Saturday "
                                    "or Sunday worked (a mistyped date?)"))
    schools = raw.get("schools") if isinstance(raw.get("schools"), list) else []
    for i, school in enumerate(directory.schools):
        own = isinstance(schools, list) and i < len(schools) and isinstance(schools[i], dict) and "calendar" in schools[i]
        if own:
            for index in school.calendar.weekday_workdays():
                warnings.append(Problem(f"schools[{i}].calendar.workdays[{index}].date",
                                        "a weekday, a workday anyway: a make-up workday (调休) is a Saturday or Sunday"))
        for year in sorted(set(unknown_years(school, [today.year])) | set(missing_years(school, today))):
            warnings.append(Problem(f"schools[{i}]" if own or directory.calendar is None else "calendar",
                                    f"{school.id}: the official holidays of {year} are not known (chinese-calendar has "
                                    f"no data for {year} and calendar: has no date in it): due times in {year} are "
                                    "estimated with weekdays and weekends; enter the holidays and make-up workdays "
                                    "under calendar: (holidays: [{from, to, name}], workdays: [{date, name}])"))
    return warnings


def check_file(path: Path) -> tuple[list[Problem], str]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [Problem(str(path), f"cannot read: {exc.strerror}")], ""
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        return [Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], ""
    directory, problems = check_config(raw)
    if directory is None:
        return problems, ""
    try:
        allowed = get_settings().allowed_private()
    except ValueError as exc:
        return [Problem("RELAY_WEBHOOK_ALLOW_PRIVATE", str(exc))], ""
    for i, school in enumerate(directory.schools):
        problems += [Problem(f"schools[{i}].{p.where}", p.message) for p in contact_problems(school, allowed)]
    problems += shards.problems_in(raw, [s.id for s in directory.schools])
    if problems:
        return problems, ""
    today = dt.date.today()
    # `shards:` is read by relay/base/shards.py, not by the directory: not a typo.
    warnings = [w for w in unknown_keys(raw) if w.where != "shards"] + warnings_for(directory)
    warnings += _channel_problems(directory)
    warnings += calendar_warnings(raw, directory, today)
    summary = "; ".join(
        f"{s.id}: {len(s.classes)} classes, {len(s.students)} students, {len(s.staff)} staff" for s in directory.schools
    )
    if isinstance(raw.get("shards"), list):
        summary += "; shards: " + ", ".join(f"{e['name']} ({len(e['schools'])} schools)" for e in raw["shards"])
    for warning in warnings:
        summary += f"\nwarning: {warning}"
    return problems, f"ok: {summary}"
