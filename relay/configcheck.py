"""`relay config check`: shapes and references (routing.validation), contact addresses (relay.outbound), the
calendar, and channel credentials."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from relay.outbound import contact_problems
from relay.settings import get_settings
from routing.calendar import unknown_years
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
    if problems:
        return problems, ""
    today = dt.date.today()
    warnings = unknown_keys(raw) + warnings_for(directory) + _channel_problems(directory)
    # Said, not guessed: a year without holiday data is a warning, so that a school can still start the term.
    for i, school in enumerate(directory.schools):
        for year in unknown_years(school, [today.year]):
            warnings.append(Problem(f"schools[{i}].terms",
                                    f"China's holiday calendar for {year} is not known yet (chinesecalendar has no "
                                    f"data): holidays and make-up workdays in {year} cannot be planned; update the "
                                    "chinesecalendar package when the State Council publishes them"))
    summary = "; ".join(
        f"{s.id}: {len(s.classes)} classes, {len(s.students)} students, {len(s.staff)} staff" for s in directory.schools
    )
    for warning in warnings:
        summary += f"\nwarning: {warning}"
    return problems, f"ok: {summary}"
