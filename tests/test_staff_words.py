"""The words staff read: plain timers, the admin forms' Chinese problems, names instead of ids, alert texts.

Pure functions, no Redis: the pages and notifications that use them are tested through the real stack
in test_staff_queue.py and test_admin.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from adapters.base import Message
from adapters.wecom import textcard
from relay.base.directory import ConfigError
from relay.base.store import RequestRecord, Status
from relay.core.notice_events import Event
from relay.core.notices import excerpt, what_to_do
from relay.pages.admin import default_backup, note_words, who_words
from relay.pages.admin_words import admin_words
from relay.pages.i18n import words
from relay.pages.report import overdue_first
from relay.pages.sessions import landing
from relay.pages.views import plain_span, timeline_lines, timer_words
from relay.school import settings_form
from relay.school.report import Line
from routing.directory import School, Staff

ZH = words("zh")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)


def school(**extra: Any) -> School:
    return School.model_validate({
        "id": "t-words", "name": "测试小学",
        "staff": [{"id": "t-wang", "name": "王老师", "roles": ["academic_affairs"], "backup": "t-zhao"},
                  {"id": "t-zhao", "name": "赵老师", "roles": ["academic_affairs"]},
                  {"id": "t-liu", "name": "刘芳", "roles": ["nurse"]},
                  {"id": "t-ma-principal", "name": "马校长", "roles": ["principal"]}],
        "classes": [{"id": "g1c1", "name": "一年级1班", "academic_affairs": "t-wang"}],
        "students": [{"id": "s1", "name": "张小明", "class_id": "g1c1",
                      "guardians": [{"id": "g1", "name": "张妈妈", "phone": "+8613800000001"}]}],
        **extra,
    })


def record(urgency: str = "P0", status: str = "received", ack_in: float = 96, text: str = "孩子发烧39度",
           **extra: Any) -> RequestRecord:
    due = (NOW + dt.timedelta(seconds=ack_in)).isoformat()
    return RequestRecord.model_validate({
        "id": "r1", "school_id": "t-words", "student_id": "s1", "class_id": "g1c1", "guardian_id": "g1",
        "text": text, "urgency": urgency, "category": "medical", "reasons": [], "status": status, "owner": "t-wang",
        "ack_due_at": due, "resolve_due_at": (NOW + dt.timedelta(hours=2)).isoformat(), "eta_text": "",
        "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(), "directory_version": 1, **extra})


@pytest.mark.parametrize(("seconds", "words_"), [(96, "1分36秒"), (24, "24秒"), (0, "0秒"), (7500, "2小时5分"),
                                                 (7200, "2小时"), (90061, "1天1小时")])
def test_spans_in_plain_words(seconds: int, words_: str) -> None:
    assert plain_span(seconds, ZH) == words_


def test_timers_say_what_is_due_and_how_late() -> None:
    now = NOW.timestamp()
    assert timer_words(record(ack_in=96), ZH, now) == "1分36秒内需确认"
    assert timer_words(record(ack_in=-24), ZH, now) == "已超时24秒"
    assert timer_words(record(status="acknowledged"), ZH, now) == "2小时内需办结"
    assert timer_words(record(ack_in=96), words("en"), now) == "1m36s to acknowledge"


def test_timeline_says_words_and_names_never_codes() -> None:
    entries = [
        {"at": NOW.isoformat(), "kind": "received", "urgency": "P0", "category": "medical"},
        {"at": NOW.isoformat(), "kind": "fallback_unacknowledged", "to": "t-liu", "event_id": "x"},
        {"at": NOW.isoformat(), "kind": "delivery_fallback", "to": "t-liu", "reason": "timeout",
         "next_channel": "sms", "channel": "wecom"},
        {"at": NOW.isoformat(), "kind": "follow_up", "by": "guardian", "text": "还在发烧"},
    ]
    lines = timeline_lines(school(), entries, ZH)
    shown = " ".join(" ".join((line["words"], line["who"], line["detail"])) for line in lines)  # "kind" is a CSS class
    for code in ("P0 medical", "medical", "fallback_unacknowledged", "wecom", "sms", "timeout", "guardian", "t-liu"):
        assert code not in shown, code
    assert "P0 紧急 · 身体不适" in shown and "刘芳（校医） 企业微信 渠道响应超时 改用短信" in shown and "家长" in shown


def test_admin_versions_name_people_and_classes() -> None:
    a = admin_words("zh")
    assert who_words(school(), "RELAY_CONFIG", a) == "配置文件"
    assert who_words(school(), "t-ma-principal", a) == "马校长（校长）"
    assert note_words(school(), "class:g1c1", a) == "更换教务老师：一年级1班"
    assert note_words(school(), "leave:t-wang", a).startswith("请假：王老师")
    assert note_words(school(), "file school.yaml", a) == "从配置文件导入"


def test_the_stand_in_is_the_configured_backup_never_the_person() -> None:
    s = school()
    assert default_backup(s, "t-wang") == "t-zhao"
    assert default_backup(s, "t-zhao") == ""  # none configured: the form asks, it does not guess
    odd = school(staff=[{"id": "t-self", "name": "自己", "roles": ["academic_affairs"], "backup": "t-self"}],
                 classes=[{"id": "g1c1", "name": "一年级1班", "academic_affairs": "t-self"}])
    assert default_backup(odd, "t-self") == ""


def test_the_principal_lands_on_the_report() -> None:
    assert landing(Staff(id="p", name="马", roles=("principal",)), None) == "/staff/report"  # type: ignore[arg-type]
    assert landing(Staff(id="p", name="马", roles=("principal",)), "/staff") == "/staff"  # type: ignore[arg-type]


def test_the_report_puts_overdue_emergencies_first() -> None:
    def line(urgency: str, due_in: int) -> Line:
        late = record(urgency=urgency, ack_in=due_in)
        return Line(record=late, ack_verdict="late", resolve_verdict=None, held_for_morning=False, escalated=False,
                    overdue=True)

    ordered = overdue_first([line("P2", -9000), line("P0", -60), line("P1", -600), line("P0", -600)])
    assert [(x.record.urgency, x.record.ack_due_at) for x in ordered][:2] == [
        ("P0", (NOW - dt.timedelta(seconds=600)).isoformat()), ("P0", (NOW - dt.timedelta(seconds=60)).isoformat())]
    assert [x.record.urgency for x in ordered] == ["P0", "P0", "P1", "P2"]


# The admin forms ------------------------------------------------------------------------------------


def form(**fields: Any) -> settings_form.Form:
    pairs = []
    for key, value in fields.items():
        pairs += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return settings_form.Form(pairs)


def test_hours_form_refuses_in_chinese_and_keeps_nothing_of_a_bad_form() -> None:
    good = settings_form.read_hours(form(mon_opens="07:40", mon_closes="16:30", tue_opens="07:40", tue_closes="16:30"))
    assert good == {"mon": "07:40-16:30", "tue": "07:40-16:30"}
    with pytest.raises(ConfigError) as refused:
        settings_form.read_hours(form(mon_opens="07:40", mon_closes="16:30", tue_opens="17:00", tue_closes="08:00",
                                      wed_opens="25:00", wed_closes="26:00", thu_opens="08:00"))
    problems = {p.where: p.message for p in refused.value.problems}
    assert set(problems) == {"周二", "周三", "周四"}
    assert "放学时间 08:00 要晚于上学时间 17:00" in problems["周二"] and "不是有效的时间" in problems["周三"]
    with pytest.raises(ConfigError):
        settings_form.read_hours(form())  # no school day at all: every routine request would wait forever


@pytest.mark.parametrize(("text", "stored"), [("2分钟", "2m"), ("30分", "30m"), ("4小时", "4h"), ("1天", "1d"),
                                              ("45秒", "45s"), ("2m", "2m"), (" 3 小时 ", "3h")])
def test_durations_are_read_as_schools_write_them(text: str, stored: str) -> None:
    assert settings_form.read_duration(text, "P0 确认时限", []) == stored


def test_sla_form_keeps_what_it_does_not_show_and_refuses_a_bad_duration() -> None:
    s = school()
    fields = {f"{u}_ack_within": a for u, a in (("P0", "3分钟"), ("P1", "30分钟"), ("P2", "1天"), ("P3", ""))}
    fields |= {"P0_step1_after": "3分钟", "P0_step1_notify": ["backup", "responder"],
               "P0_step2_after": "5分钟", "P0_step2_notify": ["role:principal"]}
    sla = settings_form.read_sla(s, form(**fields))
    assert sla["P0"]["ack_within"] == "3m" and sla["P0"]["update_within"] == "15m"  # not on the form: kept
    assert sla["P0"]["escalation"] == [{"after": "3m", "notify": ["backup", "responder"]},
                                       {"after": "5m", "notify": ["role:principal"]}]
    assert "ack_within" not in sla["P3"]
    with pytest.raises(ConfigError) as refused:
        settings_form.read_sla(s, form(**{**fields, "P1_ack_within": "半小时", "P0_step2_notify": []}))
    problems = {p.where: p.message for p in refused.value.problems}
    assert "“半小时”不是有效的时长" in problems["P1 确认时限"] and "至少勾选一个" in problems["P0 第2级升级"]


def test_the_school_phone_digits_spaces_hyphens_and_a_plus() -> None:
    assert settings_form.read_phone(form(phone="0429-5123456")) == "0429-5123456"
    assert settings_form.read_phone(form(phone="+86 429 5123456")) == "+86 429 5123456"
    assert settings_form.read_phone(form(phone="")) is None
    for bad in ("电话", "0429-5123456 转 8", "1" * 33, "++86"):
        with pytest.raises(ConfigError):
            settings_form.read_phone(form(phone=bad))
    assert school(phone="0429-5123456").phone == "0429-5123456"
    with pytest.raises(ValueError):
        school(phone="call us")


# What a notification says --------------------------------------------------------------------------


def test_alerts_say_what_to_do_and_the_excerpt_masks_names_and_numbers() -> None:
    urgent = record(text="张小明在操场摔倒，头流血了，请联系13800000001")
    assert what_to_do(urgent, Event.urgent) == "请立即前往查看学生，并点击确认接收。"
    assert what_to_do(record(urgency="P1"), Event.created) == "请今天内处理，并点击确认接收。"
    assert what_to_do(urgent, Event.fyi) == "仅供知悉，无需操作。"
    said = excerpt(school(), urgent)
    assert said.startswith("家长：") and "张小明" not in said and "小明" not in said and "13800000001" not in said
    assert "头流血" in said
    assert len(excerpt(school(), record(text="发" * 200))) <= len("家长：") + 40


def test_the_wecom_card_shows_the_title_once_the_words_and_no_raw_link() -> None:
    link = "https://relay.example.cn/a/" + "x" * 200
    message = Message(event="request.urgent", event_id="e1", attempt=1, sent_at="2026-12-07T10:00:00+08:00",
                      urgency="P0", title="一年级1班 张同学 身体不适（紧急）", body="请立即前往查看学生，并点击确认接收。",
                      link=link, recipient={"id": "t-liu", "name": "刘芳", "role": "nurse"},
                      excerpt="家长：孩子发烧39度")
    card = textcard(message, link)
    assert card["url"] == link and card["title"] == message.title
    assert message.title not in card["description"] and "http" not in card["description"]
    assert "家长：孩子发烧39度" in card["description"] and "请立即前往查看学生" in card["description"]
    assert len(card["description"].encode()) <= 512


def test_status_words_for_every_status_and_kind_the_queue_shows() -> None:
    for status in Status:
        assert ZH[f"s_{status.value}"]
    for key in ("t_ack_in", "t_resolve_in", "t_late", "waiting_title", "row_ack", "done_reassign"):
        assert key in ZH and "{" not in ZH[key].replace("{span}", "").replace("{owner}", "")
