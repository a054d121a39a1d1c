"""Inside an emergency (issue 15): what the parent reads (who was told, the school's phone, who came,
how it ended), the parent's follow-up in the same thread, closing with words to the parent, the nurse's
arrival, the acknowledgement page, and canned replies that assert nothing unchecked.

In-process app (TestClient) against the session's real Redis; no worker: queued notifications are
read from their delivery records.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.spine import WebhookReceiver, staff_page_session
from support.trust import TestClient, TrustSchool, make_school

from relay.base import links
from relay.core import canned
from relay.core.closing import OUTCOMES
from routing.calendar import opening_text
from routing.directory import School
from routing.validation import check_config

BLEEDING_FIGHT = "孩子在学校被同学打了，头撞破了在流血"


@pytest.fixture
def school(redis_url: str, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustSchool]:
    """A school of each test's own: a guardian's second P0 about the same child joins the first."""
    made = make_school(redis_url, tmp_path_factory.mktemp("emergency"), receiver.url)
    yield made
    made.close()


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def record(school: TrustSchool, request_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(school.redis.get(f"relay:{school.id}:request:{request_id}"))
    return loaded


def kinds(school: TrustSchool, request_id: str) -> list[str]:
    return [e["kind"] for e in school.timeline(request_id)]


def queued_events(school: TrustSchool, request_id: str) -> list[str]:
    names = school.redis.keys(f"relay:{school.id}:delivery:{request_id}.*")
    return sorted(n.decode().split(":delivery:")[1] for n in names)


# What the parent reads ---------------------------------------------------------------------------------


def test_a_p0_tells_the_parent_who_was_told_and_the_school_phone(school: TrustSchool) -> None:
    created = school.made_request("孩子在学校发烧39度，很难受")
    assert created["urgency"] == "P0" and created["category"] == "medical"
    assert created["school_phone"] == "0429-5123456"
    # The responders first, the owner last ("校医刘芳、王丽老师"), names and roles in words.
    assert created["told"] == [{"name": "刘校医", "role": "nurse", "role_text": "校医"},
                               {"name": "王老师", "role": "academic_affairs", "role_text": "教务"}]
    assert created["acknowledged"] is None and created["on_site"] is None
    assert created["outcome"] is None and created["closing_message"] is None
    listed = school.client.get("/v1/requests", headers=school.parent()).json()["requests"]
    mine = next(r for r in listed if r["id"] == created["id"])
    assert mine["told"] == created["told"] and mine["school_phone"] == "0429-5123456"


def test_a_routine_request_tells_nobody_at_once(school: TrustSchool) -> None:
    created = school.made_request("请问下周几开家长会？")
    assert created["urgency"] in ("P2", "P3") and created["told"] == []


def test_a_bleeding_fight_pages_the_nurse_and_shows_on_the_console(school: TrustSchool) -> None:
    created = school.made_request(BLEEDING_FIGHT)
    assert (created["urgency"], created["category"]) == ("P0", "safety")
    assert "nurse" in [p["role"] for p in created["told"]]
    client = TestClient(school.client.app)
    token = school.staff("nurse")["Authorization"].split()[1]
    assert staff_page_session(client, token).status_code == 303
    console = client.get("/nurse/queue.json").json()["items"]
    assert created["id"] in [item["id"] for item in console]


def test_the_nurse_arrives_and_closes_with_an_outcome_and_words(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校摔倒了，膝盖流血")
    rid = made["id"]
    arrived = school.client.post(f"/v1/requests/{rid}/on-site", headers=school.staff("nurse"))
    assert arrived.status_code == 200, arrived.text
    assert arrived.json()["status"] == "acknowledged" and arrived.json()["on_site_by"] == "nurse"
    again = school.client.post(f"/v1/requests/{rid}/on-site", headers=school.staff("nurse"))
    assert again.status_code == 200 and kinds(school, rid).count("on_site") == 1  # a repeat changes nothing
    seen = school.client.get(f"/v1/requests/{rid}", headers=school.parent()).json()
    assert seen["acknowledged"]["name"] == "刘校医" and seen["acknowledged"]["role_text"] == "校医"
    assert seen["on_site"]["name"] == "刘校医" and seen["on_site"]["at"] == arrived.json()["on_site_at"]
    assert "on_site" in [e["kind"] for e in seen["timeline"]]

    refused(school.client.post(f"/v1/requests/{rid}/resolve", json={"note": "已处理"}, headers=school.staff("nurse")),
            422, "message_required")
    refused(school.client.post(f"/v1/requests/{rid}/resolve", json={"message": "已处理", "outcome": "home"},
                               headers=school.staff("nurse")), 422, "unknown_outcome")
    assert record(school, rid)["status"] == "acknowledged"  # nothing stored half-way
    closed = school.client.post(f"/v1/requests/{rid}/resolve", headers=school.staff("nurse"), json={
        "message": "伤口已清洗包扎，孩子已回教室上课。", "outcome": "back_to_class", "note": "擦伤"})
    assert closed.status_code == 200, closed.text
    seen = school.client.get(f"/v1/requests/{rid}", headers=school.parent()).json()
    assert seen["status"] == "resolved"
    assert seen["outcome"] == {"code": "back_to_class", "text": "回教室"}
    assert seen["closing_message"] == "伤口已清洗包扎，孩子已回教室上课。"
    assert seen["replies"][-1]["text"] == seen["closing_message"]
    assert "擦伤" not in json.dumps(seen, ensure_ascii=False)  # the note stays internal
    refused(school.client.post(f"/v1/requests/{rid}/resolve", json={"message": "再次"}, headers=school.staff("nurse")),
            409, "already_resolved")
    refused(school.client.post(f"/v1/requests/{rid}/on-site", headers=school.staff("nurse")), 409, "already_resolved")


def test_a_p1_needs_words_unless_the_parent_had_a_reply(school: TrustSchool) -> None:
    first = school.made_request("孩子今天发烧了，请假一天", )
    assert first["urgency"] == "P1", first
    refused(school.client.post(f"/v1/requests/{first['id']}/resolve", json={}, headers=school.staff("aa")),
            422, "message_required")
    school.client.post(f"/v1/requests/{first['id']}/reply", json={"text": "请假已登记"}, headers=school.staff("aa"))
    closed = school.client.post(f"/v1/requests/{first['id']}/resolve", json={}, headers=school.staff("aa"))
    assert closed.status_code == 200 and closed.json()["closing_message"] is None
    # The closing words may also be spelt "text", as /reply spells them.
    second = school.made_request("孩子今天咳嗽得厉害，请假一天")
    assert second["urgency"] == "P1", second
    closed = school.client.post(f"/v1/requests/{second['id']}/resolve", json={"text": "已登记，祝早日康复。"},
                                headers=school.staff("aa"))
    assert closed.status_code == 200 and closed.json()["closing_message"] == "已登记，祝早日康复。"
    routine = school.made_request("请问校服在哪里订？")
    assert school.client.post(f"/v1/requests/{routine['id']}/resolve", headers=school.staff("aa")).status_code == 200


def test_on_site_is_for_staff_of_the_school_only(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校发烧了")
    answer = school.client.post(f"/v1/requests/{made['id']}/on-site", headers=school.parent())
    assert answer.status_code in (401, 403)
    other = school.client.post(f"/v1/requests/{made['id']}/on-site", headers=school.staff("nurse", school.other_id))
    refused(other, 404, "not_found")
    assert record(school, made["id"])["on_site_at"] is None


# The parent's follow-up --------------------------------------------------------------------------------


def test_the_parent_answers_in_the_same_thread(school: TrustSchool) -> None:
    made = school.made_request("请问明天下午几点放学？")
    rid = made["id"]
    headers = dict(school.parent(), **{"Idempotency-Key": uuid.uuid4().hex})
    first = school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": "是三年级的"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["id"] == rid
    entries = [e for e in school.timeline(rid) if e["kind"] == "follow_up"]
    assert len(entries) == 1 and entries[0]["by"] == "guardian" and entries[0]["text"] == "是三年级的"
    assert any(".follow_up." in name and name.endswith(".aa") for name in queued_events(school, rid))
    replay = school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": "是三年级的"}, headers=headers)
    assert replay.status_code == 200 and kinds(school, rid).count("follow_up") == 1
    refused(school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": "另一句"}, headers=headers),
            422, "idempotency_key_reused")
    refused(school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": " \u200b "}, headers=school.parent()),
            422, "empty_text")
    refused(school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": "冒充"}, headers=school.parent("g2")),
            404, "not_found")
    school.client.post(f"/v1/requests/{rid}/resolve", headers=school.staff("aa"))
    refused(school.client.post(f"/v1/requests/{rid}/follow-up", json={"text": "还有"}, headers=school.parent()),
            409, "already_resolved")
    assert kinds(school, rid).count("follow_up") == 1


# The acknowledgement page ------------------------------------------------------------------------------


def ack_code(school: TrustSchool, request_id: str, staff_id: str) -> str:
    return links.issue(school.redis, school.runtime.settings, school.id, request_id, staff_id, uuid.uuid4().hex)


def test_the_ack_page_shows_what_to_act_on_and_the_truth_about_ownership(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校发烧39度，很难受")
    code = ack_code(school, made["id"], "nurse")
    shown = school.client.get(f"/a/{code}")
    assert shown.status_code == 200
    page = shown.text
    assert "三年级2班" in page and "张同学" in page and "张小明" not in page
    assert "身体不适" in page and "发烧39度" in page
    assert 'href="tel:+8613800000001"' in page
    assert "负责人仍是王老师（教务）" in page and 'id="ack-button"' in page
    done = school.client.post(f"/a/{code}")
    assert done.status_code == 200
    assert "已确认收到。负责人：王老师（教务）。" in done.text and "由您处理" not in done.text
    assert record(school, made["id"])["acknowledged_by"] == "nurse"
    # The link again, or another person's link: who acknowledged and when, no button.
    for again in (school.client.get(f"/a/{code}"), school.client.get(f"/a/{ack_code(school, made['id'], 'aa')}")):
        assert again.status_code == 200
        assert "刘校医（校医）已于" in again.text and "确认收到" in again.text
        assert 'id="ack-button"' not in again.text
    school.client.post(f"/v1/requests/{made['id']}/resolve", headers=school.staff("nurse"),
                       json={"message": "孩子已由家长接回。", "outcome": "picked_up"})
    closed = school.client.get(f"/a/{code}")
    assert closed.status_code == 200 and "此请求已办结" in closed.text and "家长接回" in closed.text
    assert 'id="ack-button"' not in closed.text
    assert school.client.post(f"/a/{code}").status_code == 409


@pytest.mark.parametrize(("code", "status", "words"), [
    ("zzzzzzzzzzzz", 404, "链接无效或已过期"),  # well formed, not stored: expired or mistyped
    ("short", 404, "链接不完整"),
    ("a.b.c", 404, "无法核实"),
])
def test_a_bad_ack_link_is_a_chinese_page_that_says_why(school: TrustSchool, code: str, status: int,
                                                        words: str) -> None:
    for answer in (school.client.get(f"/a/{code}"), school.client.post(f"/a/{code}")):
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith("text/html")
        assert words in answer.text and "{" not in answer.text.split("<main", 1)[1].split("</main>")[0]


def test_an_expired_grant_is_gone_and_says_so(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校发烧了")
    settings = school.runtime.settings
    expired = links.grant(settings.model_copy(update={"link_ttl_seconds": -1}), school.id, made["id"], "nurse")
    for answer in (school.client.get(f"/a/{expired}"), school.client.post(f"/a/{expired}")):
        assert answer.status_code == 410 and "链接已过期" in answer.text and "24小时" in answer.text
    assert record(school, made["id"])["status"] == "received"


def test_another_schools_link_is_refused_and_says_so(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校发烧了")
    code = ack_code(school, made["id"], "nurse")
    # The code stored under the sibling school (same tag prefix is needed to look there: copy it over).
    grant = school.redis.get(f"relay:{school.id}:ack-link:{code}")
    other_code = links.school_tag(school.other_id) + code[2:]
    school.redis.set(f"relay:{school.other_id}:ack-link:{other_code}", grant, ex=60)
    answer = school.client.get(f"/a/{other_code}")
    assert answer.status_code == 403 and "不属于本校" in answer.text
    assert record(school, made["id"])["status"] == "received"


# The school's phone ------------------------------------------------------------------------------------


def test_a_bad_school_phone_is_named_by_config_check(school: TrustSchool, tmp_path: Path) -> None:
    document = {"schools": [{"id": "x-01", "name": "测试小学", "phone": "call us"}]}
    _, problems = check_config(document)
    assert [p.where for p in problems] == ["schools[0].phone"] and "call us" in problems[0].message
    document["schools"][0]["phone"] = "+86 429-512 3456"
    directory, problems = check_config(document)
    assert problems == [] and directory is not None and directory.schools[0].phone == "+86 429-512 3456"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"schools": [{"id": "x-01", "name": "测试小学", "phone": "12ab"}]},
                                   allow_unicode=True), encoding="utf-8")
    checked = school.relay("config", "check", str(path))
    assert checked.returncode != 0 and "schools[0].phone" in checked.stdout + checked.stderr


def test_out_of_hours_says_when_school_opens() -> None:
    school = School.model_validate({"id": "x-01", "name": "测试小学"})  # 08:00-17:00 on weekdays
    zone = school.zone
    friday_evening = dt.datetime(2026, 12, 4, 20, 30, tzinfo=zone)
    assert opening_text(school, friday_evening) == "学校下周一上午 8:00 开始办公"
    tuesday_evening = dt.datetime(2026, 12, 1, 20, 30, tzinfo=zone)
    assert opening_text(school, tuesday_evening) == "学校明天（周三）上午 8:00 开始办公"
    assert opening_text(school, dt.datetime(2026, 12, 1, 10, 0, tzinfo=zone)) is None


# Canned replies ----------------------------------------------------------------------------------------


def test_canned_replies_assert_nothing_staff_did_not_confirm(school: TrustSchool) -> None:
    texts = " ".join(r.zh + r.en for r in canned.defaults())
    for unchecked in ("情况稳定", "已通知门卫", "stable"):
        assert unchecked not in texts
    with_placeholder = next(r.zh for r in canned.defaults() if r.id == "nurse_on_way")
    assert canned.unfilled(with_placeholder)
    made = school.made_request("孩子在学校发烧了")
    refused(school.client.post(f"/v1/requests/{made['id']}/reply", json={"text": with_placeholder},
                               headers=school.staff("nurse")), 422, "unfilled_placeholder")
    refused(school.client.post(f"/v1/requests/{made['id']}/resolve", json={"message": with_placeholder},
                               headers=school.staff("nurse")), 422, "unfilled_placeholder")
    filled = re.sub(r"【请填写[^】]*】", "校医已到场", with_placeholder)
    assert school.client.post(f"/v1/requests/{made['id']}/reply", json={"text": filled},
                              headers=school.staff("nurse")).status_code == 200


def test_outcomes_are_the_four_of_the_contract() -> None:
    assert OUTCOMES == {"back_to_class": "回教室", "picked_up": "家长接回", "hospital": "送医", "other": "其他"}


def test_the_staff_request_page_closes_an_emergency_with_an_outcome(school: TrustSchool) -> None:
    made = school.made_request("孩子在学校发烧了，39度")
    with TestClient(school.client.app) as client:
        token = school.staff("aa")["Authorization"].split()[1]
        assert staff_page_session(client, token).status_code == 303
        page = client.get(f"/staff/requests/{made['id']}")
        assert page.status_code == 200 and 'name="outcome" value="picked_up"' in page.text
        token_field = re.search(r'name="csrf" content="([^"]+)"', page.text)
        assert token_field is not None
        done = client.post(f"/staff/requests/{made['id']}/resolve", follow_redirects=False, data={
            "csrf": token_field.group(1), "message": "已联系家长接回，请注意休息。", "outcome": "picked_up"})
        assert done.status_code == 303, done.text
    seen = school.client.get(f"/v1/requests/{made['id']}", headers=school.parent()).json()
    assert seen["status"] == "resolved" and seen["outcome"] == {"code": "picked_up", "text": OUTCOMES["picked_up"]}
    assert seen["closing_message"] == "已联系家长接回，请注意休息。"
