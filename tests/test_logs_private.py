"""The logs never carry what they must not: a full request flow through real `relay serve` and
`relay worker` processes — a parent signing in with WeChat and binding, an emergency naming the child
with a phone number in it, delivery to webhooks, an acknowledgement, a reply — and then every line
the two processes printed is searched for the message texts, the directory's names and phone
numbers, the openid, the binding code and the tokens."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from support.spine import (
    RELAY,
    ROOT,
    Post,
    WebhookReceiver,
    caller_token,
    delete_school_keys,
    free_port,
    relay_env,
    start_api,
    stop,
)
from support.trust import STAFF, STUDENTS, write_yaml

from relay.pages.privacy import NOTICE_VERSION
from tests.vendors.wechat_server import WeChatServer

OPENID = "o-6Jx" + uuid.uuid4().hex[:20]
PHONE_IN_TEXT = "13912345678"
PHONE_IN_REPLY = "13800000099"


@pytest.fixture
def running(redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_yaml(tmp_path / "school.yaml", [school_id], receiver.url)
    port = free_port()
    with WeChatServer() as wechat:
        env = relay_env(redis_url, config, f"http://127.0.0.1:{port}")
        env.update(RELAY_QUEUE_PREFIX="relaylogs-" + uuid.uuid4().hex[:8], RELAY_WECHAT_APP_ID=wechat.app_id,
                   RELAY_WECHAT_APP_SECRET=wechat.app_secret, RELAY_WECHAT_BASE_URL=wechat.base_url,
                   RELAY_LOG_LEVEL="debug")
        wechat.add_login_code("login-code-1", OPENID)
        api, url = start_api(env, tmp_path, port)
        with open(tmp_path / "worker.log", "wb") as out:
            worker = subprocess.Popen([RELAY, "worker"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        try:
            yield school_id, url, env
        finally:
            for process in (api, worker):
                stop(process)
            delete_school_keys(redis.Redis.from_url(redis_url), [school_id])


def test_no_text_name_phone_or_openid_reaches_the_logs(
    running: tuple[str, str, dict[str, str]], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    school_id, url, env = running
    client = httpx.Client(base_url=url, timeout=10)

    made = subprocess.run([RELAY, "binding-code", "create", "--school", school_id, "--guardian", "g1"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    code = json.loads(made.stdout)["code"]
    first = client.post("/v1/auth/wechat", json={"code": "login-code-1"}).json()
    signed_in = client.post("/v1/auth/bind", json={
        "binding_token": first["binding_token"], "binding_code": code,
        "consent": {"health_info": True, "notice_version": NOTICE_VERSION}}).json()
    parent = {"Authorization": f"Bearer {signed_in['access_token']}"}
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": signed_in["refresh_token"]}).json()

    text = f"张小明在学校晕倒了，没有呼吸，请马上打我电话{PHONE_IN_TEXT}"
    created = client.post("/v1/requests", json={"student_id": "s1", "text": text},
                          headers=dict(parent, **{"Idempotency-Key": uuid.uuid4().hex}))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["urgency"] == "P0"

    def to(staff_id: str, event: str) -> object:
        def match(post: Post) -> bool:
            body = post.json()
            return post.path == f"/{school_id}/{staff_id}" and body["request"]["id"] == request_id and \
                body["event"] == event
        return match

    receiver.wait_for(to("nurse", "request.urgent"), 20, "the nurse's alert")  # type: ignore[arg-type]
    receiver.wait_for(to("aa", "request.urgent"), 20, "the owner's alert")  # type: ignore[arg-type]
    nurse = {"Authorization": f"Bearer {caller_token('staff', 'nurse', school_id)}"}
    owner = {"Authorization": f"Bearer {caller_token('staff', 'aa', school_id)}"}
    assert client.post(f"/v1/requests/{request_id}/ack", headers=nurse).status_code == 200
    reply = f"张妈妈您好，刘校医已到场，孩子已清醒，有事请打{PHONE_IN_REPLY}"
    assert client.post(f"/v1/requests/{request_id}/reply", json={"text": reply}, headers=owner).status_code == 200
    assert client.get(f"/v1/requests/{request_id}", headers=parent).status_code == 200
    assert client.get(f"/v1/requests/{request_id}", headers=nurse).status_code == 200
    assert client.get("/v1/me/export", headers=parent).status_code == 200
    client.close()

    logs = (tmp_path / "worker.log").read_text(encoding="utf-8", errors="replace") + \
        next(tmp_path.glob("api-*.log")).read_text(encoding="utf-8", errors="replace")
    # The logs say what happened, by id ...
    assert request_id in logs and "request_received" in logs and "delivery_attempt" in logs
    assert "guardian_bound" in logs and "acknowledged" in logs
    # ... and nothing of who or what.
    secrets = {
        "message text": text, "reply text": reply, "a phrase of the message": "晕倒", "a phrase of the reply": "已到场",
        "phone in the message": PHONE_IN_TEXT, "phone in the reply": PHONE_IN_REPLY, "openid": OPENID,
        "binding code": code, "binding code as typed": code.replace("-", ""),
        "access token": signed_in["access_token"], "refresh token": signed_in["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"], "binding token": first["binding_token"],
    }
    for _, name, _, _, guardian, phone in STUDENTS:
        secrets |= {f"student {name}": name, f"guardian {guardian}": guardian, f"phone {phone}": phone,
                    f"phone {phone} without +86": phone.removeprefix("+86")}
    secrets |= {f"staff {name}": name for name, _ in STAFF.values()}
    leaked = sorted(what for what, secret in secrets.items() if secret in logs)
    assert not leaked, f"found in the logs: {leaked}"
