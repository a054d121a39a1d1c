"""Parents' identity: WeChat sign-in, one-time binding codes with consent, rotating refresh tokens,
and signing keys that rotate without logging anyone out. WeChat is a local server speaking
jscode2session over a real socket (tests/vendors/wechat_server.py)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.spine import WebhookReceiver
from support.trust import PREVIOUS_KEY, SECRET_KEY, TrustSchool, make_school

from relay.base import tokens
from relay.pages.privacy import NOTICE_VERSION
from tests.vendors.wechat_server import WeChatServer

CONSENT = {"health_info": True, "notice_version": NOTICE_VERSION}


@pytest.fixture(scope="module")
def wechat() -> Iterator[WeChatServer]:
    with WeChatServer() as server:
        yield server


def wechat_settings(wechat: WeChatServer) -> dict[str, Any]:
    return {"wechat_app_id": wechat.app_id, "wechat_app_secret": wechat.app_secret, "wechat_base_url": wechat.base_url}


@pytest.fixture
def make(redis_url: str, receiver: WebhookReceiver, tmp_path: Path,
         wechat: WeChatServer) -> Iterator[Callable[..., TrustSchool]]:
    made: list[TrustSchool] = []

    def new(**settings: Any) -> TrustSchool:
        school = make_school(redis_url, tmp_path, receiver.url, **(wechat_settings(wechat) | settings))
        made.append(school)
        return school

    yield new
    for school in made:
        school.close()


@pytest.fixture
def school(make: Callable[..., TrustSchool]) -> TrustSchool:
    return make()


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def login(school: TrustSchool, wechat: WeChatServer, openid: str) -> Any:
    code = "code-" + uuid.uuid4().hex
    wechat.add_login_code(code, openid)
    return school.client.post("/v1/auth/wechat", json={"code": code})


def new_code(school: TrustSchool, guardian_id: str = "g1") -> str:
    response = school.client.post("/v1/admin/binding-codes", json={"guardian_id": guardian_id},
                                  headers=school.staff("admin"))
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


def bind(school: TrustSchool, binding_token: str, code: str, consent: Any = CONSENT) -> Any:
    body: dict[str, Any] = {"binding_token": binding_token, "binding_code": code}
    if consent is not None:
        body["consent"] = consent
    return school.client.post("/v1/auth/bind", json=body)


def bound(school: TrustSchool, wechat: WeChatServer, openid: str, guardian_id: str = "g1") -> dict[str, Any]:
    first = login(school, wechat, openid).json()
    done = bind(school, first["binding_token"], new_code(school, guardian_id))
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def openid() -> str:
    return "o-" + uuid.uuid4().hex


# Sign-in and binding -------------------------------------------------------------------------


def test_an_unbound_parent_gets_a_binding_token_and_the_privacy_notice(school: TrustSchool,
                                                                       wechat: WeChatServer) -> None:
    response = login(school, wechat, openid())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bound"] is False and body["expires_in"] == 600
    assert body["privacy_notice"] == {"version": NOTICE_VERSION, "url": "http://testserver/privacy"}
    # A binding token opens nothing but binding.
    refused(school.client.get("/v1/requests", headers={"Authorization": f"Bearer {body['binding_token']}"}),
            401, "invalid_token")


def test_binding_needs_the_separate_consent_to_health_information(school: TrustSchool,
                                                                  wechat: WeChatServer) -> None:
    binding_token = login(school, wechat, openid()).json()["binding_token"]
    code = new_code(school)
    for consent in (None, {}, {"health_info": False, "notice_version": NOTICE_VERSION},
                    {"health_info": True, "notice_version": "2020-01-01"}, {"health_info": True}):
        refused(bind(school, binding_token, code, consent), 422, "consent_required")
    assert bind(school, binding_token, code, {"health_info": "yes", "notice_version": NOTICE_VERSION}
                ).status_code == 422
    # Refusals did not spend the code: with consent it binds.
    done = bind(school, binding_token, code)
    assert done.status_code == 200, done.text
    stored = [json.loads(school.redis.get(k)) for k in school.redis.scan_iter(f"relay:{school.id}:binding:*")]
    assert [d["consent"]["health_info"] for d in stored] == [True]
    assert stored[0]["consent"]["notice_version"] == NOTICE_VERSION


def test_a_bound_parent_signs_in_and_submits(school: TrustSchool, wechat: WeChatServer) -> None:
    who = openid()
    tokens_at_bind = bound(school, wechat, who, "g1")
    assert tokens_at_bind["bound"] is True and tokens_at_bind["guardian_id"] == "g1"
    assert tokens_at_bind["school_id"] == school.id
    claims = tokens.verify(tokens_at_bind["access_token"], [SECRET_KEY])
    assert claims["exp"] - claims["iat"] == 2 * 3600 == tokens_at_bind["expires_in"]
    assert tokens_at_bind["refresh_expires_in"] == 30 * 86400

    again = login(school, wechat, who)
    assert again.status_code == 200 and again.json()["bound"] is True
    headers = {"Authorization": f"Bearer {again.json()['access_token']}", "Idempotency-Key": uuid.uuid4().hex}
    created = school.client.post("/v1/requests", json={"student_id": "s1", "text": "孩子明天请假"}, headers=headers)
    assert created.status_code == 201, created.text
    refused(school.client.post("/v1/requests", json={"student_id": "s3", "text": "请假"}, headers=headers),
            404, "unknown_student")


def test_openids_codes_and_refresh_tokens_are_stored_only_as_digests(school: TrustSchool,
                                                                      wechat: WeChatServer) -> None:
    """With one exception: the guardian's openid key, since a status message must be addressed to it."""
    who = openid()
    first = login(school, wechat, who).json()
    code = new_code(school)
    assert school.redis.exists(f"relay:{school.id}:binding-code:{hashlib.sha256(code.replace('-', '').encode()).hexdigest()}")
    signed_in = bind(school, first["binding_token"], code.lower()).json()  # typed in lower case: still the code
    digest = hashlib.sha256(who.encode()).hexdigest()
    assert json.loads(school.redis.get(f"relay:{school.id}:binding:{digest}"))["guardian_id"] == "g1"
    refresh_digest = hashlib.sha256(signed_in["refresh_token"].encode()).hexdigest()
    key = f"relay:{school.id}:refresh:{refresh_digest}"
    assert school.redis.get(key) == b"g1" and 29 * 86400 < school.redis.ttl(key) <= 30 * 86400
    openid_key = f"relay:{school.id}:guardian:g1:openid"
    assert school.redis.get(openid_key) == who.encode()
    everything = b"".join(k + (school.redis.dump(k) or b"") for k in school.redis.scan_iter(f"relay:{school.id}:*")
                          if k.decode() != openid_key)
    for secret in (who, signed_in["refresh_token"], code, code.replace("-", "")):
        assert secret.encode() not in everything


def test_a_binding_code_works_once(school: TrustSchool, wechat: WeChatServer) -> None:
    code = new_code(school)
    assert bind(school, login(school, wechat, openid()).json()["binding_token"], code).status_code == 200
    refused(bind(school, login(school, wechat, openid()).json()["binding_token"], code), 404, "invalid_binding_code")
    refused(bind(school, login(school, wechat, openid()).json()["binding_token"], "ABCD-EFGH"), 404,
            "invalid_binding_code")


def test_a_code_of_one_school_binds_in_that_school_only(school: TrustSchool, wechat: WeChatServer) -> None:
    response = school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g1"},
                                  headers=school.staff("admin", school.other_id))
    assert response.status_code == 201 and response.json()["school_id"] == school.other_id
    signed_in = bind(school, login(school, wechat, openid()).json()["binding_token"], response.json()["code"]).json()
    assert signed_in["school_id"] == school.other_id
    mine = school.made_request("请问下周几开家长会？")["id"]
    other = {"Authorization": f"Bearer {signed_in['access_token']}"}
    refused(school.client.get(f"/v1/requests/{mine}", headers=other), 404, "not_found")


def test_bad_binding_tokens_are_refused(school: TrustSchool, wechat: WeChatServer) -> None:
    code = new_code(school)
    good = login(school, wechat, openid()).json()["binding_token"]
    expired = tokens.sign({"purpose": "bind", "oid": "o-x"}, [SECRET_KEY], -10)
    access = school.parent("g1")["Authorization"].split()[1]
    forged = tokens.sign({"purpose": "bind", "oid": "o-x"}, ["not-our-key"], 600)
    for bad in (expired, access, forged, good[:-3] + "AAA", "garbage"):
        refused(bind(school, bad, code), 401, "invalid_binding_token")
    assert bind(school, good, code).status_code == 200


def test_wechat_refusals_and_outages(make: Callable[..., TrustSchool], wechat: WeChatServer) -> None:
    school = make()
    refused(school.client.post("/v1/auth/wechat", json={"code": "never-issued"}), 401, "invalid_code")
    wechat.fail_next("html_502")
    outage = school.client.post("/v1/auth/wechat", json={"code": "whatever"})
    refused(outage, 503, "wechat_unavailable")
    assert outage.headers["retry-after"] == "5"
    refused(school.client.post("/v1/auth/wechat", json={}), 422, "missing_field")
    unconfigured = make(wechat_app_id=None, wechat_app_secret=None)
    refused(unconfigured.client.post("/v1/auth/wechat", json={"code": "c"}), 503, "wechat_unavailable")


# Binding codes: who makes them --------------------------------------------------------------


def test_only_administrators_and_the_principal_make_codes(school: TrustSchool) -> None:
    for staff_id in ("admin", "principal"):
        made = school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g2", "days": 3},
                                  headers=school.staff(staff_id))
        assert made.status_code == 201, made.text
        assert set(made.json()) == {"code", "school_id", "guardian_id", "expires_at"}
    for staff_id in ("aa", "nurse", "duty"):
        refused(school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g2"},
                                   headers=school.staff(staff_id)), 403, "admins_only")
    refused(school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g2"}, headers=school.parent("g1")),
            403, "staff_only")
    refused(school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g-nobody"},
                               headers=school.staff("admin")), 404, "unknown_guardian")
    refused(school.client.post("/v1/admin/binding-codes", json={"guardian_id": "g2", "days": 365},
                               headers=school.staff("admin")), 422, "invalid_field")
    assert {"binding_code_created"} == {e["action"] for e in school.audit()}


def test_relay_binding_code_create(school: TrustSchool, wechat: WeChatServer) -> None:
    done = school.relay("binding-code", "create", "--school", school.id, "--guardian", "g3", "--days", "3")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert (made["school_id"], made["guardian_id"]) == (school.id, "g3")
    key = f"relay:{school.id}:binding-code:{hashlib.sha256(made['code'].replace('-', '').encode()).hexdigest()}"
    assert 2 * 86400 < school.redis.ttl(key) <= 3 * 86400
    signed_in = bind(school, login(school, wechat, openid()).json()["binding_token"], made["code"]).json()
    assert signed_in["guardian_id"] == "g3"
    assert school.relay("binding-code", "create", "--school", school.id, "--guardian", "g-nobody").returncode == 1
    assert school.relay("binding-code", "create", "--school", "no-such-school", "--guardian", "g1").returncode == 1


# Refresh tokens ------------------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_token_revokes_them_all(school: TrustSchool, wechat: WeChatServer) -> None:
    first = bound(school, wechat, openid())
    second = school.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"] and second_body["guardian_id"] == "g1"
    assert school.client.get("/v1/requests", headers={
        "Authorization": f"Bearer {second_body['access_token']}"}).status_code == 200
    # The first token again: someone else has it. Every refresh token of the guardian stops working.
    refused(school.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}),
            401, "refresh_token_reused")
    refused(school.client.post("/v1/auth/refresh", json={"refresh_token": second_body["refresh_token"]}),
            401, "invalid_refresh_token")
    for bad in ("garbage", f"{school.id}.{'x' * 43}", "no-such-school." + "y" * 43):
        refused(school.client.post("/v1/auth/refresh", json={"refresh_token": bad}), 401, "invalid_refresh_token")


def test_sign_out_revokes_this_devices_refresh_token_only(school: TrustSchool, wechat: WeChatServer) -> None:
    phone = bound(school, wechat, openid())
    tablet = school.client.post("/v1/auth/refresh", json={"refresh_token": bound(school, wechat, openid())["refresh_token"]})
    assert tablet.status_code == 200, tablet.text
    out = school.client.post("/v1/auth/sign-out", json={"refresh_token": phone["refresh_token"]})
    assert (out.status_code, out.json()) == (200, {"signed_out": True})
    refused(school.client.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}),
            401, "invalid_refresh_token")
    # Signing out twice is no error, and the other device stays signed in.
    again = school.client.post("/v1/auth/sign-out", json={"refresh_token": phone["refresh_token"]})
    assert (again.status_code, again.json()) == (200, {"signed_out": False})
    other = school.client.post("/v1/auth/refresh", json={"refresh_token": tablet.json()["refresh_token"]})
    assert other.status_code == 200, other.text
    refused(school.client.post("/v1/auth/sign-out", json={}), 422, "missing_field")


# Signing keys rotate without logging anyone out --------------------------------------------------


def test_tokens_signed_with_a_previous_key_still_work(school: TrustSchool) -> None:
    old = tokens.caller_token("parent", "g1", school.id, [PREVIOUS_KEY], 3600)
    assert old.split(".")[0] == tokens.key_id(PREVIOUS_KEY)
    assert school.client.get("/v1/requests", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    old_staff = tokens.caller_token("staff", "aa", school.id, [PREVIOUS_KEY], 3600)
    assert school.client.get("/v1/queue", headers={"Authorization": f"Bearer {old_staff}"}).status_code == 200
    retired = tokens.caller_token("parent", "g1", school.id, ["a-key-retired-long-ago"], 3600)
    refused(school.client.get("/v1/requests", headers={"Authorization": f"Bearer {retired}"}), 401, "invalid_token")


def test_new_tokens_are_signed_with_the_current_key(school: TrustSchool, wechat: WeChatServer) -> None:
    signed_in = bound(school, wechat, openid())
    assert signed_in["access_token"].split(".")[0] == tokens.key_id(SECRET_KEY)


def test_relay_token_keeps_working_as_documented(school: TrustSchool) -> None:
    for kind, subject, path in (("parent", "g1", "/v1/requests"), ("staff", "aa", "/v1/queue")):
        done = school.relay("token", kind, subject, "--school", school.id)
        assert done.returncode == 0, done.stderr
        printed = done.stdout.strip()
        claims = tokens.verify(printed, [SECRET_KEY])
        assert claims["exp"] - claims["iat"] == 30 * 86400  # operators' tokens keep their 30 days
        assert school.client.get(path, headers={"Authorization": f"Bearer {printed}"}).status_code == 200


# Rate limits on the auth endpoints ---------------------------------------------------------------


def test_binding_attempts_are_limited_per_wechat_user_and_per_address(make: Callable[..., TrustSchool],
                                                                      wechat: WeChatServer) -> None:
    school = make(rate_limit_bind="3/minute", rate_limit_bind_ip="5/minute")
    guesser = login(school, wechat, openid()).json()["binding_token"]
    for _ in range(3):
        refused(bind(school, guesser, "ZZZZ-ZZZZ"), 404, "invalid_binding_code")
    limited = bind(school, guesser, new_code(school))
    refused(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 60
    # Another WeChat user from the same address still binds, until the address's own limit.
    assert bind(school, login(school, wechat, openid()).json()["binding_token"], new_code(school)).status_code == 200
    refused(bind(school, login(school, wechat, openid()).json()["binding_token"], new_code(school)), 429,
            "rate_limited")


def test_auth_endpoints_are_limited_per_address(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_ip="3/minute")
    for _ in range(3):
        refused(school.client.post("/v1/auth/refresh", json={"refresh_token": "garbage"}), 401,
                "invalid_refresh_token")
    limited = school.client.post("/v1/auth/wechat", json={"code": "c"})
    refused(limited, 429, "rate_limited")
    assert limited.headers["retry-after"].isdigit()
