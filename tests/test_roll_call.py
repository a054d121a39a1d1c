"""Teachers' mornings (issue 18): the roll-call digest, and no notice of one's own action.

The plan and `relay eta` are pure and checked directly; the digest runs through real `relay serve` and
`relay worker` processes on a private Redis with a simulated clock (as tests/test_sla.py's digest), and
survives a worker killed between the parents' messages and the roll call.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.spine import (
    RELAY,
    ROOT,
    Post,
    School,
    Schools,
    Stack,
    WebhookReceiver,
    private_stack,
    wait_until,
)

from relay.base.clock import SIM_KEY
from relay.cli.embedded import EmbeddedRedis
from routing.calendar import eta
from routing.classifier import Classification
from routing.directory import School as SchoolModel
from routing.labels import Category, Urgency
from routing.plan import Notice, plan
from routing.validation import check_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 23)  # an ordinary school day
ROLL_CALL = {"at": "08:10", "after_school_until": "18:00"}

ABSENCE = "孩子今天家里有事，请假一天"  # P1 attendance: the owner, and the homeroom teacher for information
SICK = "李小华今天肚子不舒服，请假一天"  # P1 attendance
LATE_PICKUP = "今天下午我来晚一点接孩子，大概五点半到"  # P1 pickup
FEVER = "孩子在学校发烧了"  # P0 medical: the owner and the nurse at once, at any hour


def at(clock: str, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), SHANGHAI)


def school_model(roll_call: dict[str, Any] | None = ROLL_CALL) -> SchoolModel:
    raw: dict[str, Any] = {
        "id": "rc", "name": "测试小学",
        "staff": [{"id": "aa", "name": "王老师", "roles": ["academic_affairs"]},
                  {"id": "hr", "name": "李老师", "roles": ["homeroom"]},
                  {"id": "nurse", "name": "刘校医", "roles": ["nurse"]},
                  {"id": "duty", "name": "周值班", "roles": ["duty_leader"]}],
        "classes": [{"id": "c1", "name": "三年级2班", "academic_affairs": "aa", "homeroom": "hr"}],
        "students": [{"id": "s1", "name": "张小明", "class_id": "c1"}],
    }
    if roll_call is not None:
        raw["roll_call"] = roll_call
    directory, problems = check_config({"schools": [raw]})
    assert directory is not None, problems
    return directory.schools[0]


def routed(school: SchoolModel, urgency: Urgency, category: Category, now: dt.datetime) -> Any:
    student = school.student("s1")
    assert student is not None
    return plan(Classification(urgency, category, ("test",)), student, school, now)


# The plan: who waits for the roll call, who is told at once ---------------------------------------------


def test_a_p1_before_school_waits_for_the_roll_call_with_its_fyi_copy_and_is_due_from_it() -> None:
    result = routed(school_model(), Urgency.P1, Category.attendance, at("06:30"))
    assert result.notify_now == (Notice("aa", "owner", at("08:10")), Notice("hr", "homeroom", at("08:10")))
    assert result.held_until == at("08:10")
    assert result.eta_text == "王老师将于8:10前看到"
    assert result.ack_due_at == at("08:40")  # the owner has the usual 30 school minutes from the roll call
    assert result.escalation[0].due_at == at("08:40")


def test_a_p1_in_the_evening_waits_for_the_next_school_days_roll_call() -> None:
    friday_evening = at("20:00", MONDAY + dt.timedelta(days=4))
    result = routed(school_model(), Urgency.P1, Category.attendance, friday_evening)
    assert {n.held_until for n in result.notify_now} == {at("08:10", MONDAY + dt.timedelta(days=7))}
    assert result.eta_text == "王老师将于下周一8:10前看到"


def test_the_roll_call_defaults_to_the_opening_and_routine_requests_share_its_digest() -> None:
    school = school_model({})
    assert routed(school, Urgency.P1, Category.attendance, at("06:30")).held_until == at("08:00")
    # With a roll call at 8:10, a homework question waits for the same digest: one a morning.
    assert routed(school_model(), Urgency.P2, Category.academic, at("06:30")).notify_now == (
        Notice("aa", "owner", at("08:10")),)


def test_in_hours_without_a_roll_call_or_with_it_off_a_p1_is_told_at_once() -> None:
    assert routed(school_model(), Urgency.P1, Category.attendance, at("10:00")).notify_now == (
        Notice("aa", "owner"), Notice("hr", "homeroom"))
    for school in (school_model(None), school_model({"enabled": False, "at": "08:10"})):
        result = routed(school, Urgency.P1, Category.attendance, at("06:30"))
        assert all(n.held_until is None for n in result.notify_now) and result.held_until is None
        assert "看到" not in result.eta_text


def test_an_emergency_never_waits() -> None:
    result = routed(school_model(), Urgency.P0, Category.medical, at("06:30"))
    assert {(n.staff_id, n.held_until) for n in result.notify_now} == {("aa", None), ("nurse", None)}


def test_a_pickup_change_while_after_school_care_runs_goes_at_once_to_whoever_is_on_duty() -> None:
    result = routed(school_model(), Urgency.P1, Category.pickup, at("17:10"))
    tomorrow = at("08:10", MONDAY + dt.timedelta(days=1))
    assert result.notify_now == (Notice("duty", "on_duty"), Notice("aa", "owner", tomorrow),
                                 Notice("hr", "homeroom", tomorrow))
    assert result.eta_text == "周值班（值班）将立即看到"
    # After care has ended, or an absence for tomorrow: the roll call.
    assert routed(school_model(), Urgency.P1, Category.pickup, at("18:00")).notify_now[0] == \
        Notice("aa", "owner", tomorrow)
    assert routed(school_model(), Urgency.P1, Category.attendance, at("17:10")).notify_now[0] == \
        Notice("aa", "owner", tomorrow)


def test_digest_words_group_by_class() -> None:
    from relay.core.deliveries import Delivery
    from relay.core.notice_events import EVENTS, Event, Wording

    delivery = Delivery.model_validate({"event_id": "r1.digest.1.aa", "school_id": "s", "request_id": "r1",
                                        "staff_id": "aa", "why": "digest", "event": "request.digest",
                                        "urgency": "P1", "created_at": 0, "request_ids": ["r1", "r2", "r3"],
                                        "by_class": {"c1": 2, "c2": 1}})
    words = EVENTS[Event.digest].words(Wording(delivery, classes="三年级2班 2 条、三年级1班 1 条"))
    assert words == "【今日待处理】3 条家长请求（非工作时间收到）：三年级2班 2 条、三年级1班 1 条"


# `relay eta` follows the roll call, with its three keys --------------------------------------------------


def test_relay_eta_follows_the_roll_call() -> None:
    school = school_model()
    assert eta(school, "P1", at("06:30")) == {
        "ack_due_at": "2026-11-23T08:40:00+08:00", "resolve_due_at": "2026-11-23T12:10:00+08:00",
        "eta_text": "老师将于8:10前看到"}
    assert eta(school, "P1", at("10:00"))["eta_text"] == "预计今天上午 10:30 前回复"
    assert eta(school_model(None), "P1", at("06:30"))["ack_due_at"] == "2026-11-23T08:30:00+08:00"


def test_relay_eta_command_reads_the_roll_call_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "school.yaml"
    config.write_text((ROOT / "deploy/examples/school.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([RELAY, "eta", "--urgency", "P1", "--at", "2026-11-23T06:30:00+08:00"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={"RELAY_CONFIG": str(config), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert set(line) == {"ack_due_at", "resolve_due_at", "eta_text"}
    assert line["eta_text"] == "老师将于7:40前看到" and line["ack_due_at"] == "2026-11-23T08:10:00+08:00"


# Bad input: said precisely, nothing applied ---------------------------------------------------------------


@pytest.mark.parametrize(("roll_call", "where", "words"), [
    ({"at": "07:00"}, "schools[0].roll_call.at", "点名时间 07:00 不在周一的在校时间 08:00-17:00 内"),
    ({"at": "17:00"}, "schools[0].roll_call.at", "不在周五的在校时间"),
    ({"after_school_until": "16:30"}, "schools[0].roll_call.after_school_until", "课后看护结束时间 16:30 不晚于周一的放学时间"),
    ({"at": 460}, "schools[0].roll_call.at", "时间格式应为"),  # YAML's reading of an unquoted 7:40
])
def test_config_check_names_a_bad_roll_call(roll_call: dict[str, Any], where: str, words: str) -> None:
    raw = {"schools": [{"id": "rc", "name": "测试小学", "roll_call": roll_call,
                        "staff": [{"id": "aa", "name": "王老师", "roles": ["academic_affairs"]}],
                        "classes": [{"id": "c1", "name": "一班", "academic_affairs": "aa"}]}]}
    directory, problems = check_config(raw)
    assert directory is None
    assert any(p.where == where and words in p.message for p in problems), problems


# Through the real system, on a simulated clock --------------------------------------------------------------


def sim_at(stack: Stack, moment: dt.datetime) -> None:
    stack.redis.set(SIM_KEY, moment.timestamp())


def timers_key(school: School) -> str:
    return f"relay:{school.id}:timers"


def scheduler_reached(stack: Stack, school: School, moment: dt.datetime) -> None:
    witness = f"witness|{uuid.uuid4().hex}"  # an unknown kind: fired, logged, removed
    stack.redis.zadd(timers_key(school), {witness: int(moment.timestamp() * 1000)})
    wait_until(lambda: stack.redis.zscore(timers_key(school), witness) is None, 20,
               f"a scheduler poll at {moment:%H:%M:%S}")


def submitted(school: School, text: str, student_id: str = "s1", guardian_id: str = "g1") -> dict[str, Any]:
    response = school.submit(text, student_id=student_id, guardian_id=guardian_id)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_morning_roll_call_is_one_digest_per_person_sent_once_across_a_worker_restart(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with private_stack(tmp_path, receiver, server, workers=1, RELAY_SIMULATED_CLOCK="1") as (stack, made):
            sim_at(stack, at("06:30"))
            school = made.new(roll_call=ROLL_CALL)

            def posts(staff_id: str | None = None) -> list[Post]:
                prefix = school.path(staff_id) if staff_id else f"/{school.id}/"
                return receiver.received(lambda p: p.path.startswith(prefix))

            first = submitted(school, ABSENCE)
            assert first["urgency"] == "P1" and first["ack_due_at"] == "2026-11-23T08:40:00+08:00"
            view = school.client.get(f"/v1/requests/{first['id']}", headers=school.parent("g1")).json()
            assert "王老师将于8:10前看到" in json.dumps(view, ensure_ascii=False)
            sim_at(stack, at("06:45"))
            second = submitted(school, SICK, "s3", "g2")
            # An emergency at dawn still pages at once.
            emergency = submitted(school, FEVER, "s2", "g1")
            assert emergency["urgency"] == "P0"
            receiver.wait_for(lambda p: p.path == school.path("nurse") and p.json()["event"] == "request.urgent",
                              20, "the nurse's page at dawn")
            assert stack.redis.zscore(timers_key(school), "digest|aa") == at("08:10").timestamp() * 1000
            assert stack.redis.zscore(timers_key(school), "digest|hr") == at("08:10").timestamp() * 1000

            # The worker dies before the roll call; its successor sends the digest.
            stack.kill9(stack.live_workers()[0].pid)
            stack.ensure_workers(1)
            just_before = at("08:10") - dt.timedelta(seconds=1)
            sim_at(stack, just_before)
            scheduler_reached(stack, school, just_before)
            before = [(p.path, p.json()["event"]) for p in posts()]
            assert all(p.json()["request"]["id"] == emergency["id"] for p in posts()), before

            sim_at(stack, at("08:10"))
            digest = receiver.wait_for(lambda p: p.path == school.path("aa") and p.json()["event"] == "request.digest",
                                       20, "the owner's roll-call digest")
            assert digest.json()["request"]["digest_request_ids"] == [first["id"], second["id"]]
            stored = json.loads(stack.redis.get(f"relay:{school.id}:delivery:{digest.event_id}") or b"{}")
            assert stored["by_class"] == {"c1": 2}  # its title: "…：三年级2班 2 条" (test_digest_words_group_by_class)
            copy = receiver.wait_for(lambda p: p.path == school.path("hr") and p.json()["event"] == "request.digest",
                                     20, "the homeroom teacher's copy in the same roll call")
            assert copy.json()["request"]["digest_request_ids"] == [first["id"], second["id"]]

            # The owner acknowledges on the page: nobody tells them what they did.
            acked = school.client.post(f"/v1/requests/{first['id']}/ack", headers=school.staff("aa"))
            assert acked.status_code == 200, acked.text
            acked_at = time.monotonic()
            later = at("08:20")
            sim_at(stack, later)
            scheduler_reached(stack, school, later)
            late = submitted(school, ABSENCE, "s3", "g2")  # in hours: at once, as before
            receiver.wait_for(lambda p: p.path == school.path("aa") and p.json()["request"]["id"] == late["id"],
                              20, "a P1 in school hours, at once")
            digests = [p.path for p in posts() if p.json()["event"] == "request.digest"]
            assert sorted(digests) == sorted([school.path("aa"), school.path("hr")]), "one digest a person"
            assert not [p for p in posts("aa") if p.json()["request"]["id"] == first["id"] and p.at > acked_at]
            p1_pages = [p for p in posts() if p.json()["request"]["id"] in (first["id"], second["id"])
                        and p.json()["event"] != "request.digest"]
            assert not p1_pages, [(p.path, p.json()["event"]) for p in p1_pages]
    finally:
        server.stop()


def test_a_pickup_change_during_after_school_care_pages_the_duty_leader_at_once(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with private_stack(tmp_path, receiver, server, workers=1, RELAY_SIMULATED_CLOCK="1") as (stack, made):
            sim_at(stack, at("17:10"))
            school = made.new(roll_call=ROLL_CALL)
            pickup = submitted(school, LATE_PICKUP)
            assert pickup["urgency"] == "P1" and pickup["category"] == "pickup"
            page = receiver.wait_for(lambda p: p.path == school.path("duty") and p.json()["request"]["id"] == pickup["id"],
                                     20, "the duty leader's page")
            assert page.json()["event"] == "request.created" and page.json()["recipient"]["role"] == "on_duty"
            tomorrow = at("08:10", MONDAY + dt.timedelta(days=1))
            assert stack.redis.zscore(timers_key(school), "digest|aa") == tomorrow.timestamp() * 1000
            assert not receiver.received(lambda p: p.path == school.path("aa"))
    finally:
        server.stop()


def test_an_outbreak_found_before_school_rides_the_nurses_and_principals_roll_call(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with private_stack(tmp_path, receiver, server, workers=1, RELAY_SIMULATED_CLOCK="1") as (stack, made):
            sim_at(stack, at("06:30"))
            school = made.new(roll_call=ROLL_CALL)
            # The outbreak check runs in the worker: first it must know the new school (a page shows it does).
            stranger = submitted(school, "有陌生人在校门口拉孩子")  # P0 safety, not counted as contagious
            receiver.wait_for(lambda p: p.path == school.path("safety") and p.json()["request"]["id"] == stranger["id"],
                              20, "the safety officer's page")
            fever = "孩子发烧了在家，请假一天"  # P1 attendance, contagious
            ids = [submitted(school, fever, student, guardian)["id"]
                   for student, guardian in (("s1", "g1"), ("s2", "g1"), ("s3", "g2"))]
            for staff_id in ("nurse", "principal"):
                wait_until(lambda s=staff_id: stack.redis.zscore(timers_key(school), f"digest|{s}") is not None, 20,
                           f"the {staff_id}'s roll call armed by the outbreak")
            assert stack.redis.zscore(timers_key(school), "digest|nurse") == at("08:10").timestamp() * 1000
            assert any(e["kind"] == "outbreak_alert" and e["held_until"] for i in ids for e in school.timeline(i))
            sim_at(stack, at("08:10"))
            for staff_id in ("nurse", "principal"):
                digest = receiver.wait_for(lambda p, s=staff_id: p.path == school.path(s)
                                           and p.json()["event"] == "request.digest", 20, f"the {staff_id}'s digest")
                assert sorted(digest.json()["request"]["digest_request_ids"]) == sorted(ids)
            assert not receiver.received(lambda p: p.path.startswith(f"/{school.id}/")
                                         and p.json()["event"] == "request.outbreak")
    finally:
        server.stop()

# No notice confirms a person's own action ---------------------------------------------------------------


HOMEWORK_QUESTION = "请问体检报告什么时候发？"  # P2: in hours, the owner is told at once


def test_nobody_is_told_what_they_did_themselves(schools: Schools, receiver: WebhookReceiver) -> None:
    school = schools.new()
    emergency = submitted(school, FEVER)
    receiver.wait_for(lambda p: p.path == school.path("aa") and p.json()["request"]["id"] == emergency["id"],
                      20, "the owner's page")
    assert school.client.post(f"/v1/requests/{emergency['id']}/ack", headers=school.staff("aa")).status_code == 200
    acked_at = time.monotonic()

    routine = submitted(school, HOMEWORK_QUESTION, "s3", "g2")
    # Taking it oneself: no "转交给您" to the one who took it.
    taken = school.client.post(f"/v1/requests/{routine['id']}/reassign", headers=school.staff("aa2"),
                               json={"to": "aa2", "reason": "我来处理"})
    assert taken.status_code == 200 and taken.json()["owner"] == "aa2", taken.text
    taken_at = time.monotonic()
    # Raised to an emergency by the one who holds it: the nurse is paged, the raiser is not.
    raised = school.client.post(f"/v1/requests/{routine['id']}/retriage", headers=school.staff("aa2"),
                                json={"urgency": "P0", "category": "medical", "reason": "孩子呼吸困难"})
    assert raised.status_code == 200, raised.text
    receiver.wait_for(lambda p: p.path == school.path("nurse") and p.json()["request"]["id"] == routine["id"],
                      20, "the nurse's page for the raised request")
    # Given to someone else: they are told (someone else did it).
    handed = school.client.post(f"/v1/requests/{routine['id']}/reassign", headers=school.staff("aa2"),
                                json={"to": "aa", "reason": "王老师熟悉情况"})
    assert handed.status_code == 200, handed.text
    receiver.wait_for(lambda p: p.path == school.path("aa") and p.json()["event"] == "request.reassigned",
                      20, "the colleague's notice")
    # The owner's witness: a later page to aa2 about another request shows anything queued earlier arrived.
    witness = submitted(school, FEVER.replace("发烧", "摔伤流血"), "s3", "g2")
    receiver.wait_for(lambda p: p.path == school.path("nurse") and p.json()["request"]["id"] == witness["id"],
                      20, "a later page")
    own = [(p.path, p.json()["event"]) for p in receiver.received(
        lambda p: (p.path == school.path("aa") and p.json()["request"]["id"] == emergency["id"] and p.at > acked_at)
        or (p.path == school.path("aa2") and p.json()["request"]["id"] == routine["id"] and p.at > taken_at))]
    assert not own, own
    assert not receiver.received(lambda p: p.path.startswith(f"/{school.id}/")
                                 and p.json()["event"] == "request.ack_confirmed")


# The weekly report: who was notified out of hours, by kind ------------------------------------------------


def test_the_weekly_report_counts_each_persons_notifications_outside_school_hours() -> None:
    from relay.base.store import RequestRecord
    from relay.school import report

    school = school_model()

    def line(urgency: str) -> report.Line:
        record = RequestRecord.model_validate({
            "id": f"r-{urgency}", "school_id": "rc", "student_id": "s1", "class_id": "c1", "guardian_id": "g1",
            "text": "", "urgency": urgency, "category": "pickup", "reasons": [], "owner": "aa",
            "created_at": at("06:00").isoformat(), "updated_at": at("06:00").isoformat(), "ack_due_at": None,
            "resolve_due_at": None, "eta_text": "", "directory_version": 1})
        return report.Line(record, None, None, False, False, False)

    def delivered(to: str, event: str, clock: str, request_id: str) -> dict[str, Any]:
        return {"kind": "delivered", "to": to, "at": at(clock).isoformat(),
                "event_id": f"{request_id}.{event}.0.{to}"}

    timelines = [
        [{"kind": "assigned", "notified": ["aa", "nurse"]},
         delivered("aa", "urgent", "06:00", "r-P0"), delivered("nurse", "urgent", "06:00", "r-P0"),
         delivered("aa", "escalated", "06:02", "r-P0"), delivered("aa", "reminder", "10:00", "r-P0"),
         {"kind": "delivered", "to": "g1", "at": at("06:00").isoformat(), "event_id": "r-P0.received.0.guardian-g1"}],
        [{"kind": "assigned", "notified": ["duty", "aa"]},
         delivered("duty", "created", "17:10", "r-P1"), delivered("aa", "digest", "08:10", "r-P1")],
    ]
    rows = report._out_of_hours(school, [line("P0"), line("P1")], timelines)
    assert [(r.staff_id, dict(r.by_kind)) for r in rows] == [
        ("aa", {"p0_page": 1, "escalation": 1}), ("duty", {"on_duty": 1}), ("nurse", {"p0_page": 1})]
