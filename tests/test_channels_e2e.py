"""Issue 6, end to end over real sockets: `relay serve` and `relay worker` against the local WeCom,
Aliyun SMS and WeChat servers (tests/vendors/), exactly as production would reach the real ones.

A nurse's contacts are [WeCom, SMS]: an unacknowledged P0 card falls back to an SMS after
RELAY_FALLBACK_AFTER_SECONDS; an acknowledged one does not; a WeCom token retired mid-run is refreshed;
an unknown WeCom user falls straight to SMS. A guardian bound in WeChat hears received / assigned /
answered as subscribe messages; one without a subscription (43101) is a timeline fact, not a dead letter.

The module runs its own API and one worker (one token cache: the token-expiry check is deterministic)
in a Redis database of its own, so the session's other workers never fire its timers.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.spine import (
    Stack,
    WebhookReceiver,
    caller_token,
    free_port,
    lease_database,
    relay_env,
    wait_until,
    write_school_yaml,
)

from relay.base import keys
from relay.base.directory import as_written, current_version, load_yaml, publish, publish_school
from relay.cli import embedded
from relay.core.notices import event_id
from relay.pages.privacy import NOTICE_VERSION
from tests.vendors.aliyun_sms_server import AliyunSmsServer
from tests.vendors.wechat_server import WeChatServer
from tests.vendors.wecom_server import WeComServer

FALLBACK_AFTER = 1.0
FEVER = "孩子在学校发烧了"


@dataclass
class Vendors:
    wecom: WeComServer
    aliyun: AliyunSmsServer
    wechat: WeChatServer
    receiver: WebhookReceiver


@pytest.fixture(scope="module")
def vendors() -> Iterator[Vendors]:
    receiver = WebhookReceiver()
    with WeComServer() as wecom, AliyunSmsServer() as aliyun, WeChatServer() as wechat:
        yield Vendors(wecom, aliyun, wechat, receiver)
    receiver.close()


@pytest.fixture(scope="module")
def own_redis(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own: the session stack's workers poll every school's timers in theirs."""
    lease = lease_database(redis_url)
    if lease is not None:
        url, release = lease
        try:
            yield url
        finally:
            release()
        return
    server = embedded.EmbeddedRedis(tmp_path_factory.mktemp("redis-e2e")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def e2e(own_redis: str, vendors: Vendors, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("e2e")
    seed_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(base / "school.yaml", seed_id, vendors.receiver.url)
    env = relay_env(own_redis, config, f"http://127.0.0.1:{free_port()}")
    wecom, aliyun, wechat = vendors.wecom, vendors.aliyun, vendors.wechat
    env.update(
        RELAY_WECOM_CORP_ID=wecom.corp_id,
        RELAY_WECOM_SECRET=wecom.secret,
        RELAY_WECOM_AGENT_ID=str(wecom.agent_id),
        RELAY_WECOM_BASE_URL=wecom.base_url,
        RELAY_SMS_PROVIDER="aliyun",
        RELAY_SMS_ACCESS_KEY_ID=aliyun.access_key_id,
        RELAY_SMS_ACCESS_KEY_SECRET=aliyun.access_key_secret,
        RELAY_SMS_SIGN_NAME=aliyun.sign_name,
        RELAY_SMS_TEMPLATE_ID=aliyun.template_code,
        RELAY_ALIYUN_SMS_BASE_URL=aliyun.base_url,
        RELAY_WECHAT_APP_ID=wechat.app_id,
        RELAY_WECHAT_APP_SECRET=wechat.app_secret,
        RELAY_WECHAT_TEMPLATE_ID=wechat.template_id,
        RELAY_WECHAT_BASE_URL=wechat.base_url,
        RELAY_FALLBACK_AFTER_SECONDS=str(FALLBACK_AFTER),
    )
    running = Stack(own_redis, env, base)
    running.school_ids.append(seed_id)
    try:
        running.start_api()
        running.start_worker()
        yield running
    finally:
        running.close()


@dataclass
class E2ESchool:
    id: str
    nurse_userid: str
    nurse_phone: str  # as Aliyun receives it (no +86)
    stack: Stack
    client: httpx.Client

    def staff(self, staff_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token('staff', staff_id, self.id)}"}

    def submit(self, text: str, student_id: str = "s1", guardian_id: str = "g1",
               headers: dict[str, str] | None = None) -> dict[str, Any]:
        headers = dict(headers or {"Authorization": f"Bearer {caller_token('parent', guardian_id, self.id)}"})
        headers["Idempotency-Key"] = uuid.uuid4().hex
        response = self.client.post("/v1/requests", json={"student_id": student_id, "text": text}, headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def timeline(self, request_id: str) -> list[dict[str, Any]]:
        raw = self.stack.redis.lrange(keys.timeline(self.id, request_id), 0, -1)
        return [json.loads(e) for e in raw]

    def wait_timeline(self, request_id: str, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.timeline(request_id)
                         if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())), None)

        try:
            entry: dict[str, Any] = wait_until(found, timeout, f"{kind} {match}", interval=0.05)  # type: ignore[arg-type]
            return entry
        except AssertionError as exc:
            seen = [(e["kind"], e.get("event_id"), e.get("reason")) for e in self.timeline(request_id)]
            raise AssertionError(f"{exc}; timeline: {seen}") from None

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.stack.redis.lrange(keys.dead_letters(self.id), 0, -1)]


@pytest.fixture
def school(e2e: Stack, vendors: Vendors, tmp_path: Path) -> Iterator[E2ESchool]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    userid = f"Nurse{secrets.token_hex(3)}"
    phone = f"139{secrets.randbelow(10**8):08d}"
    contacts = {"nurse": [{"channel": "wecom", "userid": userid}, {"channel": "sms", "phone": f"+86{phone}"}]}
    path = write_school_yaml(tmp_path / "school.yaml", school_id, vendors.receiver.url, contacts=contacts)
    e2e.school_ids.append(school_id)
    publish(e2e.redis, load_yaml(path))
    client = httpx.Client(base_url=e2e.url, timeout=10)
    made = E2ESchool(school_id, userid, phone, e2e, client)
    wait_until(lambda: client.get("/v1/queue", headers=made.staff("aa")).status_code == 200, 10,
               "the API to know the school", interval=0.05)
    yield made
    client.close()


def cards_to(wecom: WeComServer, userid: str) -> list[dict[str, Any]]:
    return [m for m in list(wecom.messages) if m.get("touser") == userid]


def sms_to(aliyun: AliyunSmsServer, phone: str) -> list[dict[str, str]]:
    return [p for p in list(aliyun.sent) if p.get("PhoneNumbers") == phone]


def subscribe_messages(wechat: WeChatServer, openid: str) -> list[dict[str, Any]]:
    return [m for m in list(wechat.messages) if m.get("touser") == openid]


# --- WeCom first, SMS when nobody acknowledges -------------------------------------------------------


def test_an_unacknowledged_p0_card_falls_back_to_sms_and_an_acknowledged_one_does_not(
    school: E2ESchool, vendors: Vendors
) -> None:
    wecom, aliyun = vendors.wecom, vendors.aliyun
    public_url = school.stack.env["RELAY_PUBLIC_URL"]
    started = time.monotonic()
    first = school.submit(FEVER)
    assert first["urgency"] == "P0" and first["category"] == "medical"

    card = wait_until(lambda: cards_to(wecom, school.nurse_userid), 10, "the nurse's WeCom card")[0]
    assert card["msgtype"] == "textcard" and card["agentid"] == wecom.agent_id
    # The one-click acknowledgement link, short: RELAY_PUBLIC_URL/a/ and a 12-character code.
    assert re.fullmatch(re.escape(f"{public_url}/a/") + "[A-Za-z0-9]{12}", card["textcard"]["url"])
    assert "张同学" in card["textcard"]["title"] + card["textcard"]["description"]
    # The card shows the parent's words (so the nurse knows what to bring), never the child's full name,
    # never the title twice and never the raw link (the link is the card's button).
    description = card["textcard"]["description"]
    assert "张小明" not in json.dumps(card, ensure_ascii=False) and f"家长：{FEVER}" in description
    assert card["textcard"]["title"] not in description and "http" not in description

    # The second P0 is acknowledged right after its card: no SMS may follow it.
    second = school.submit("孩子在学校摔倒了，头流血", student_id="s3", guardian_id="g2")
    wait_until(lambda: [c for c in cards_to(wecom, school.nurse_userid) if "李同学" in json.dumps(c, ensure_ascii=False)],
               10, "the second card")
    ack = school.client.post(f"/v1/requests/{second['id']}/ack", headers=school.staff("nurse"))
    assert ack.status_code == 200, ack.text

    # Nobody acknowledges the first: the SMS, signed as Aliyun checks it (only accepted sends are in `sent`).
    sms = wait_until(lambda: sms_to(aliyun, school.nurse_phone), 30, "the fallback SMS")[0]
    took = time.monotonic() - started
    assert FALLBACK_AFTER <= took < FALLBACK_AFTER + 6, took
    assert sms["SignName"] == aliyun.sign_name and sms["TemplateCode"] == aliyun.template_code
    assert sms["SignatureMethod"] == "HMAC-SHA1" and sms["Action"] == "SendSms"
    params = json.loads(sms["TemplateParam"])
    assert list(params) == ["class", "name", "category", "link"]
    assert params["class"] == "三年级2班" and params["name"] == "张同学" and params["category"] == "身体不适"
    # The template holds RELAY_PUBLIC_URL/a/; the variable carries the code, within Aliyun's 35 characters.
    code = params["link"]
    assert re.fullmatch("[A-Za-z0-9]{12}", code) and code != card["textcard"]["url"].rsplit("/", 1)[1]

    first_eid = event_id(first["id"], "request.urgent", 0, "nurse")
    school.wait_timeline(first["id"], "fallback_unacknowledged", event_id=f"{first_eid}.next")
    delivered = school.wait_timeline(first["id"], "delivered", event_id=f"{first_eid}.next")
    assert delivered["channel"] == "sms"

    # Well past the fallback delay: the acknowledged one sent nothing more to the nurse's phone.
    time.sleep(FALLBACK_AFTER + 1.5)
    assert len(sms_to(aliyun, school.nurse_phone)) == 1

    # The nurse opens the SMS's link: a button first (a preview acknowledges nothing), then the ack as her.
    page = school.client.get(f"/a/{code}")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert school.client.get(f"/v1/requests/{first['id']}", headers=school.staff("nurse")).json()["status"] == "received"
    done = school.client.post(f"/a/{code}")
    assert done.status_code == 200, done.text
    entry = school.wait_timeline(first["id"], "acknowledged")
    assert (entry["by"], entry["via"]) == ("nurse", "link")
    assert not [e for e in school.timeline(second["id"]) if e["kind"] == "fallback_unacknowledged"]
    second_eid = event_id(second["id"], "request.urgent", 0, "nurse")
    assert school.stack.redis.get(keys.delivery(school.id, f"{second_eid}.next")) is None
    # Neither guardian is bound in WeChat here: no parent notice was queued, whatever the channel's setup.
    assert not list(school.stack.redis.scan_iter(match=f"relay:{school.id}:delivery:*guardian*"))


def test_a_wecom_token_retired_mid_run_is_refreshed_and_the_card_still_arrives(
    school: E2ESchool, vendors: Vendors
) -> None:
    wecom = vendors.wecom
    first = school.submit(FEVER)
    wait_until(lambda: cards_to(wecom, school.nurse_userid), 10, "the first card")
    school.client.post(f"/v1/requests/{first['id']}/ack", headers=school.staff("aa"))
    tokens_before, answers_before = len(wecom.issued_tokens), len(wecom.answers)

    wecom.expire_token()  # WeCom retires the token the worker has cached
    second = school.submit("孩子在学校发烧了，39度", student_id="s2")
    wait_until(lambda: len(cards_to(wecom, school.nurse_userid)) >= 2, 10, "the card after the token expired")
    school.client.post(f"/v1/requests/{second['id']}/ack", headers=school.staff("aa"))

    assert 42001 in wecom.answers[answers_before:]  # the cached token was refused ...
    assert len(wecom.issued_tokens) > tokens_before  # ... a new one fetched, and the send went through
    eid = event_id(second["id"], "request.urgent", 0, "nurse")
    entry = school.wait_timeline(second["id"], "delivered", event_id=eid)
    assert entry["channel"] == "wecom" and entry["attempt"] == 1
    assert wecom.current_token is not None and wecom.current_token not in json.dumps(school.timeline(second["id"]))


def test_an_unknown_wecom_user_falls_straight_to_sms(school: E2ESchool, vendors: Vendors) -> None:
    wecom, aliyun = vendors.wecom, vendors.aliyun
    wecom.unknown_users.add(school.nurse_userid)
    started = time.monotonic()
    request = school.submit(FEVER)

    eid = event_id(request["id"], "request.urgent", 0, "nurse")
    fell = school.wait_timeline(request["id"], "delivery_fallback", event_id=eid)
    assert fell["reason"] == "recipient" and fell["vendor_code"] == "81013" and fell["next_channel"] == "sms"
    wait_until(lambda: sms_to(aliyun, school.nurse_phone), 10, "the SMS")
    delivered = school.wait_timeline(request["id"], "delivered", event_id=eid)
    assert delivered["channel"] == "sms"
    # Straight to SMS: the same delivery's next contact at once, not the unacknowledged fallback after a delay.
    assert not [e for e in school.timeline(request["id"]) if e["kind"] == "fallback_unacknowledged"]
    assert time.monotonic() - started < FALLBACK_AFTER + 3
    assert not cards_to(wecom, school.nurse_userid)
    assert not school.dead_letters()


# --- parents: mini-program subscribe messages ----------------------------------------------------------


def bind_guardian(school: E2ESchool, wechat: WeChatServer, guardian_id: str) -> tuple[str, dict[str, str]]:
    """The real flow: the school's code, wx.login's code through jscode2session, consent. (openid, parent headers)"""
    made = school.client.post("/v1/admin/binding-codes", json={"guardian_id": guardian_id},
                              headers=school.staff("principal"))
    assert made.status_code == 201, made.text
    openid = "o-" + secrets.token_hex(8)
    login_code = "code-" + secrets.token_hex(6)
    wechat.add_login_code(login_code, openid)
    signed = school.client.post("/v1/auth/wechat", json={"code": login_code})
    assert signed.status_code == 200, signed.text
    bound = school.client.post("/v1/auth/bind", json={
        "binding_token": signed.json()["binding_token"], "binding_code": made.json()["code"],
        "consent": {"health_info": True, "notice_version": NOTICE_VERSION}})
    assert bound.status_code == 200, bound.text
    return openid, {"Authorization": f"Bearer {bound.json()['access_token']}"}


def status_of(message: dict[str, Any]) -> str:
    return str(message["data"]["phrase2"]["value"])


def test_a_bound_guardian_hears_received_assigned_and_answered(school: E2ESchool, vendors: Vendors) -> None:
    wechat = vendors.wechat
    openid, parent = bind_guardian(school, wechat, "g1")
    # The openid is kept for the guardian (messages need it), under the school's key.
    assert school.stack.redis.get(keys.guardian_openid(school.id, "g1")) == openid.encode()
    wechat.subscribe(openid, times=3)  # the parent tapped 允许 for three updates

    request = school.submit("请问明天的数学作业是什么？", headers=parent)
    received = wait_until(lambda: subscribe_messages(wechat, openid), 10, "the received message")[0]
    assert status_of(received) == "已受理"
    assert received["template_id"] == wechat.template_id
    assert received["page"] == f"pages/request/detail?id={request['id']}"

    assert school.client.post(f"/v1/requests/{request['id']}/ack", headers=school.staff("aa")).status_code == 200
    assigned = wait_until(lambda: subscribe_messages(wechat, openid)[1:], 10, "the assigned message")[0]
    assert status_of(assigned) == "已分配"
    assert assigned["data"]["thing3"]["value"].startswith("王老师已接手")

    replied = school.client.post(f"/v1/requests/{request['id']}/reply", json={"text": "第15页练习"},
                                 headers=school.staff("aa"))
    assert replied.status_code == 200, replied.text
    answered = wait_until(lambda: subscribe_messages(wechat, openid)[2:], 10, "the answered message")[0]
    assert status_of(answered) == "已回复"
    assert "第15页" not in json.dumps(answered, ensure_ascii=False)  # the answer itself stays behind the page

    def delivered_to_parent() -> list[str]:
        return sorted(e["event_id"].split(".")[1] for e in school.timeline(request["id"])
                      if e["kind"] == "delivered" and e.get("to") == "g1" and e.get("channel") == "miniprogram")

    assert wait_until(lambda: len(delivered_to_parent()) == 3, 10, "three deliveries on the timeline")
    assert delivered_to_parent() == ["answered", "assigned", "received"]
    # Nothing for a parent is logged with the openid.
    logs = "".join(p.read_text(errors="replace") for p in school.stack.log_dir.glob("*.log"))
    assert openid not in logs


def test_an_openid_without_a_subscription_is_a_timeline_fact_not_a_dead_letter(
    school: E2ESchool, vendors: Vendors
) -> None:
    wechat = vendors.wechat
    openid = "o-" + secrets.token_hex(8)
    school.stack.redis.set(keys.guardian_openid(school.id, "g2"), openid)
    wechat.subscribe(openid, times=0)  # known to WeChat, never tapped 允许: 43101

    request = school.submit("请问下周的家长会几点开始？", student_id="s3", guardian_id="g2")
    failed = school.wait_timeline(request["id"], "delivery_failed", to="g2")
    assert failed["reason"] == "recipient" and failed["vendor_code"] == "43101" and failed["attempt"] == 1
    assert 43101 in wechat.answers
    assert not subscribe_messages(wechat, openid)
    assert not [d for d in school.dead_letters() if d["request_id"] == request["id"]]


def test_a_class_name_longer_than_an_sms_variable_is_cut_and_the_sms_still_goes_out(
    school: E2ESchool, vendors: Vendors
) -> None:
    """Aliyun refuses a variable over 35 characters (isv.PARAM_LENGTH_LIMIT): Relay cuts it, never the SMS."""
    wecom, aliyun = vendors.wecom, vendors.aliyun
    found = current_version(school.stack.redis, school.id)
    assert found is not None
    long_name = "二〇二六级国际部双语实验班（三年级2班）" * 2  # 40 characters
    renamed = found[1].model_copy(update={"classes": tuple(
        c.model_copy(update={"name": long_name}) for c in found[1].classes)})
    version = publish_school(school.stack.redis, school.id, as_written(renamed)).version
    wecom.unknown_users.add(school.nurse_userid)
    # A thank-you (P3: nobody is notified) until the API plans against the renamed class's version.
    def planned_against_new_version() -> bool:
        thanks = school.submit("谢谢老师")
        return bool(school.wait_timeline(thanks["id"], "received").get("directory_version") == version)

    wait_until(planned_against_new_version, 5, "the API to plan against the new version", interval=0.2)
    request = school.submit(FEVER, student_id="s2")

    sms = wait_until(lambda: sms_to(aliyun, school.nurse_phone), 10, "the SMS")[0]
    params = json.loads(sms["TemplateParam"])
    assert params["class"] == long_name[:34] + "…" and all(len(v) <= 35 for v in params.values())
    eid = event_id(request["id"], "request.urgent", 0, "nurse")
    assert school.wait_timeline(request["id"], "delivered", event_id=eid)["channel"] == "sms"
