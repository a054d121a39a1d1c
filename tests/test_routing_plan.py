"""routing.plan, the directory model and routing.validation: pure decisions, time passed in, no I/O."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from routing.classifier import Classification
from routing.directory import Contact, School
from routing.durations import parse_duration
from routing.labels import Category, Urgency
from routing.plan import Notice, PlanError, plan
from routing.validation import check_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY_10 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)  # an ordinary school day, in hours
ROOT = Path(__file__).resolve().parents[1]


def member(staff_id: str, *roles: str, **extra: Any) -> dict[str, Any]:
    return {"id": staff_id, "name": staff_id.upper(), "roles": list(roles),
            "contacts": [{"channel": "webhook", "url": f"http://127.0.0.1:9/{staff_id}"}], **extra}


def raw_school(**extra: Any) -> dict[str, Any]:
    return {
        "id": "t-plan",
        "name": "测试小学",
        "staff": [
            member("aa", "academic_affairs", backup="aa2"),
            member("aa2", "academic_affairs"),
            member("aa3", "academic_affairs"),
            member("nurse", "nurse"),
            member("safety", "safety_officer"),
            member("duty", "duty_leader"),
            member("principal", "principal"),
            member("hr", "homeroom"),
        ],
        "classes": [{"id": "c1", "name": "三年级2班", "academic_affairs": "aa", "homeroom": "hr"}],
        "students": [{"id": "s1", "name": "张小明", "class_id": "c1", "guardians": [{"id": "g1", "name": "张妈妈"}]}],
        **extra,
    }


def school_of(raw: dict[str, Any]) -> School:
    return School.model_validate(raw)


def with_staff(raw: dict[str, Any], staff_id: str, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for entry in raw["staff"]:
        if entry["id"] == staff_id:
            entry.update(changes)
    return raw


def routed(school: School, urgency: Urgency, category: Category, now: dt.datetime = WEDNESDAY_10) -> Any:
    student = school.student("s1")
    assert student is not None
    return plan(Classification(urgency, category, ("test",)), student, school, now)


def notified(result: Any) -> set[tuple[str, str]]:
    return {(n.staff_id, n.why) for n in result.notify_now}


# Owner ------------------------------------------------------------------------------------------


def test_the_owner_is_the_classes_academic_affairs_teacher() -> None:
    result = routed(school_of(raw_school()), Urgency.P2, Category.academic)
    assert result.owner == "aa"
    assert result.notify_now == (Notice("aa", "owner"),)


def test_an_absent_owner_is_replaced_by_their_backup() -> None:
    school = school_of(with_staff(raw_school(), "aa", absent=True))
    result = routed(school, Urgency.P2, Category.academic)
    assert result.owner == "aa2"
    assert ("aa", "owner") not in notified(result)


def test_leave_names_its_own_backup_only_for_its_days() -> None:
    leave = [{"start": "2026-11-24", "end": "2026-11-26", "backup": "aa3"}]
    school = school_of(with_staff(raw_school(), "aa", leave=leave))
    assert routed(school, Urgency.P2, Category.academic).owner == "aa3"
    assert routed(school, Urgency.P2, Category.academic, WEDNESDAY_10 + dt.timedelta(days=2)).owner == "aa"


def test_when_owner_and_backup_are_away_another_academic_affairs_teacher_owns_it() -> None:
    raw = with_staff(with_staff(raw_school(), "aa", absent=True), "aa2", absent=True)
    assert routed(school_of(raw), Urgency.P2, Category.academic).owner == "aa3"


def test_a_class_whose_owner_is_nobody_cannot_be_planned() -> None:
    raw = raw_school()
    raw["staff"] = [s for s in raw["staff"] if "academic_affairs" not in s["roles"]]
    raw["classes"][0]["academic_affairs"] = "gone"
    with pytest.raises(PlanError):
        routed(school_of(raw), Urgency.P2, Category.academic)


# Who is told now ----------------------------------------------------------------------------------


def test_a_p0_medical_goes_to_the_owner_and_the_nurse_at_once() -> None:
    result = routed(school_of(raw_school()), Urgency.P0, Category.medical)
    assert notified(result) == {("aa", "owner"), ("nurse", "nurse")}


def test_a_p0_safety_goes_to_owner_safety_officer_and_duty_leader() -> None:
    result = routed(school_of(raw_school()), Urgency.P0, Category.safety)
    assert notified(result) == {("aa", "owner"), ("safety", "safety_officer"), ("duty", "duty_leader")}


def test_a_p0_safety_with_an_injury_reaches_the_nurse_too() -> None:
    student = school_of(raw_school()).student("s1")
    assert student is not None
    hurt = Classification(Urgency.P0, Category.safety, ("test",), injured=True)
    result = plan(hurt, student, school_of(raw_school()), WEDNESDAY_10)
    assert notified(result) == {("aa", "owner"), ("safety", "safety_officer"), ("duty", "duty_leader"),
                                ("nurse", "nurse")}
    # From the words: a beating with bleeding is safety, and it is an injury.
    from routing.classifier import classify

    beaten = classify("孩子在学校被同学打了，头在流血")
    assert (beaten.urgency, beaten.category, beaten.injured) == (Urgency.P0, Category.safety, True)
    assert not classify("校门口有陌生人要带走孩子").injured


@pytest.mark.parametrize("category", [Category.attendance, Category.pickup])
def test_a_p1_absence_or_pickup_tells_the_homeroom_teacher_fyi(category: Category) -> None:
    result = routed(school_of(raw_school()), Urgency.P1, category)
    assert notified(result) == {("aa", "owner"), ("hr", "homeroom")}


def test_the_homeroom_teacher_is_not_on_call_for_anything_else() -> None:
    school = school_of(raw_school())
    assert notified(routed(school, Urgency.P1, Category.medical)) == {("aa", "owner")}
    assert notified(routed(school, Urgency.P2, Category.academic)) == {("aa", "owner")}
    assert routed(school, Urgency.P3, Category.feedback).notify_now == ()


def test_a_person_is_told_once_even_with_two_reasons() -> None:
    raw = with_staff(raw_school(), "aa", roles=["academic_affairs", "nurse"])
    raw["staff"] = [s for s in raw["staff"] if s["id"] != "nurse"]
    result = routed(school_of(raw), Urgency.P0, Category.medical)
    assert [n.staff_id for n in result.notify_now] == ["aa"]


# Due times and escalation ---------------------------------------------------------------------------


def test_p0_escalation_steps_are_cumulative_and_resolved_to_people() -> None:
    raw = raw_school(sla={"P0": {
        "ack_within": "2m",
        "resolve_within": "2h",
        "escalation": [
            {"after": "2m", "notify": ["backup", "responder"]},
            {"after": "3m", "notify": ["role:duty_leader", "responder"]},
            {"after": "5m", "notify": ["role:principal", "staff:safety"], "repeat": 1},
        ],
    }})
    result = routed(school_of(raw), Urgency.P0, Category.medical)

    assert result.ack_due_at == WEDNESDAY_10 + dt.timedelta(minutes=2)
    assert result.resolve_due_at == WEDNESDAY_10 + dt.timedelta(hours=2)
    assert [(s.index, s.due_at - WEDNESDAY_10, s.notify) for s in result.escalation] == [
        (1, dt.timedelta(minutes=2), ("aa2", "nurse")),
        (2, dt.timedelta(minutes=5), ("duty", "nurse")),
        (3, dt.timedelta(minutes=10), ("principal", "safety")),
        (4, dt.timedelta(minutes=15), ("principal", "safety")),
    ]
    assert result.school_time is False


def test_a_p0_runs_on_the_wall_clock_on_a_holiday_night() -> None:
    night = dt.datetime(2026, 10, 1, 23, 0, tzinfo=SHANGHAI)  # National Day
    result = routed(school_of(raw_school()), Urgency.P0, Category.safety, night)
    assert result.ack_due_at == night + dt.timedelta(minutes=2)
    assert result.escalation[0].due_at == night + dt.timedelta(minutes=2)


def test_p1_clocks_count_school_hours_only() -> None:
    late = dt.datetime(2026, 11, 25, 16, 50, tzinfo=SHANGHAI)  # ten minutes before closing (17:00)
    raw = raw_school(sla={"P1": {"ack_within": "30m", "resolve_within": "4h", "escalation": [
        {"after": "30m", "notify": ["backup"]}, {"after": "30m", "notify": ["role:duty_leader"]}]}})
    result = routed(school_of(raw), Urgency.P1, Category.attendance, late)

    thursday = dt.datetime(2026, 11, 26, tzinfo=SHANGHAI)
    assert result.school_time is True
    assert result.ack_due_at == thursday.replace(hour=8, minute=20)
    assert [(s.due_at, s.notify) for s in result.escalation] == [
        (thursday.replace(hour=8, minute=20), ("aa2",)),
        (thursday.replace(hour=8, minute=50), ("duty",)),
    ]
    assert result.eta_text.startswith("预计明天")


def test_the_escalation_snapshot_follows_the_owner_of_the_day() -> None:
    raw = with_staff(raw_school(), "aa", absent=True)
    result = routed(school_of(raw), Urgency.P0, Category.medical)
    assert result.owner == "aa2"
    # "backup" is the owner's backup: aa2 has none named, so another academic-affairs teacher who is in.
    assert result.escalation[0].notify[0] == "aa3"


def test_now_must_carry_a_time_zone() -> None:
    with pytest.raises(ValueError):
        routed(school_of(raw_school()), Urgency.P0, Category.medical, dt.datetime(2026, 11, 25, 10, 0))


# The directory model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("45s", 45), ("2m", 120), ("4h", 14400), ("1d", 86400)])
def test_durations_as_schools_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text).seconds == seconds


@pytest.mark.parametrize("text", ["2 minutes", "0m", "-1m", "1.5h", "", "m"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="45s, 2m, 4h or 1d|more than zero"):
        parse_duration(text)


def test_a_contact_needs_its_channels_address() -> None:
    with pytest.raises(ValidationError, match="url"):
        Contact.model_validate({"channel": "webhook"})
    with pytest.raises(ValidationError, match="phone"):
        Contact.model_validate({"channel": "sms"})
    assert Contact.model_validate({"channel": "webhook", "url": "https://x/y"}).address() == {
        "channel": "webhook", "url": "https://x/y"}


def test_a_school_that_writes_only_p0_keeps_the_default_policies() -> None:
    school = school_of(raw_school(sla={"P0": {"ack_within": "1m"}}))
    assert school.sla[Urgency.P0].ack_within == parse_duration("1m")
    assert school.sla[Urgency.P1].ack_within == parse_duration("30m")
    assert school.sla[Urgency.P3].ack_within is None


def test_directory_lookups() -> None:
    raw = raw_school()
    raw["students"].append({"id": "s2", "name": "张小红", "class_id": "c1", "guardians": [{"id": "g1", "name": "张妈妈"}]})
    school = school_of(raw)
    assert school.children_of("g1") == ("s1", "s2")
    assert school.children_of("nobody") == ()
    assert [s.id for s in school.with_role(school.staff[0].roles[0])] == ["aa", "aa2", "aa3"]
    assert school.guardian("g1") is not None and school.staff_member("nope") is None


# routing.validation ------------------------------------------------------------------------------------


def problems_of(raw_school_doc: dict[str, Any]) -> list[str]:
    directory, problems = check_config({"schools": [raw_school_doc]})
    assert directory is None
    return [str(p) for p in problems]


def test_a_sound_configuration_has_no_problems() -> None:
    directory, problems = check_config({"schools": [raw_school()]})
    assert problems == [] and directory is not None


def test_the_example_configuration_is_sound() -> None:
    raw = yaml.safe_load((ROOT / "deploy/examples/school.yaml").read_text(encoding="utf-8"))
    directory, problems = check_config(raw)
    assert problems == [] and directory is not None


def test_a_students_unknown_class_is_named_with_its_place() -> None:
    raw = raw_school()
    raw["students"][0]["class_id"] = "c9"
    assert problems_of(raw) == ["schools[0].students[0].class_id: unknown class 'c9'"]


@pytest.mark.parametrize("value", ["", "nobody"])
def test_a_class_without_an_academic_affairs_teacher_is_named(value: str) -> None:
    raw = raw_school()
    raw["classes"][0]["academic_affairs"] = value
    [problem] = problems_of(raw)
    assert problem.startswith("schools[0].classes[0].academic_affairs: ")
    assert ("no academic-affairs teacher" if not value else "unknown staff 'nobody'") in problem


def test_a_class_whose_teacher_lacks_the_role_is_named() -> None:
    raw = raw_school()
    raw["classes"][0]["academic_affairs"] = "hr"
    assert problems_of(raw) == ["schools[0].classes[0].academic_affairs: 'hr' does not have the academic_affairs role"]


def test_an_unknown_channel_is_named_with_its_place() -> None:
    raw = raw_school()
    raw["staff"][3]["contacts"] = [{"channel": "fax", "url": "http://x"}]
    found = problems_of(raw)
    assert any(p.startswith("schools[0].staff[3].contacts[0].channel: ") and "webhook" in p for p in found), found


@pytest.mark.parametrize("value", ["2 minutes", 5, "0s"])
def test_a_bad_duration_is_named_with_its_place(value: Any) -> None:
    raw = raw_school(sla={"P0": {"ack_within": value}})
    found = problems_of(raw)
    assert any(p.startswith("schools[0].sla.P0.ack_within: bad duration") for p in found), found


@pytest.mark.parametrize(("section", "index"), [("staff", 1), ("students", 0), ("classes", 0)])
def test_duplicate_ids_are_named_at_each_place(section: str, index: int) -> None:
    raw = raw_school()
    raw[section].append(copy.deepcopy(raw[section][index]))
    last = len(raw[section]) - 1
    duplicate = raw[section][index]["id"]
    found = problems_of(raw)
    what = {"staff": "staff", "students": "student", "classes": "class"}[section]
    assert f"schools[0].{section}[{index}].id: duplicate {what} id {duplicate!r}" in found
    assert f"schools[0].{section}[{last}].id: duplicate {what} id {duplicate!r}" in found


def test_duplicate_school_ids_are_named() -> None:
    directory, problems = check_config({"schools": [raw_school(), raw_school()]})
    assert directory is None
    assert [str(p) for p in problems] == ["schools[0].id: duplicate school id 't-plan'",
                                          "schools[1].id: duplicate school id 't-plan'"]


def test_every_problem_is_reported_not_only_the_first() -> None:
    raw = raw_school(sla={"P0": {"ack_within": "soon"}})
    raw["staff"][3]["contacts"] = [{"channel": "fax", "url": "http://x"}]
    raw["students"][0]["class_id"] = "c9"
    found = problems_of(raw)
    for place in ("schools[0].sla.P0.ack_within", "schools[0].staff[3].contacts[0].channel",
                  "schools[0].students[0].class_id"):
        assert any(p.startswith(place + ": ") for p in found), (place, found)


def test_unknown_escalation_targets_are_named() -> None:
    raw = raw_school(sla={"P0": {"escalation": [{"after": "2m", "notify": ["role:janitor", "staff:ghost", "everyone"]}]}})
    assert problems_of(raw) == [
        "schools[0].sla.P0.escalation[0].notify[0]: unknown role 'janitor'",
        "schools[0].sla.P0.escalation[0].notify[1]: unknown staff 'ghost'",
        "schools[0].sla.P0.escalation[0].notify[2]: unknown target 'everyone': "
        "write owner, backup, responder, role:NAME or staff:ID",
    ]


def test_not_a_mapping_is_one_problem_at_the_top() -> None:
    directory, problems = check_config(["schools"])
    assert directory is None and [str(p) for p in problems] == [
        "(top): the file must be a mapping with a 'schools' list"]


def test_a_shape_error_in_one_school_does_not_claim_the_file_has_none() -> None:
    raw = raw_school()
    raw["staff"][3]["contacts"] = [{"channel": "fax", "url": "http://x"}]
    assert not [p for p in problems_of(raw) if p.startswith("schools: ")]


def test_keys_relay_does_not_read_are_ignored_and_named_as_warnings() -> None:
    from routing.validation import unknown_keys

    raw = raw_school()
    raw["motto"] = "好好学习"
    raw["classes"][0]["grade"] = 3
    raw["sla"] = {"P0": {"ack_within": "2m", "escalaton": []}}
    directory, problems = check_config({"schools": [raw]})
    assert directory is not None and problems == []
    assert sorted(str(p) for p in unknown_keys({"schools": [raw]})) == [
        "schools[0].classes[0].grade: unknown key: ignored (a typo?)",
        "schools[0].motto: unknown key: ignored (a typo?)",
        "schools[0].sla.P0.escalaton: unknown key: ignored (a typo?)",
    ]
