"""The right people see the right requests: every endpoint and page against other guardians, other
schools and colleagues whose request it is not; the audit log of staff actions; pages escape what
parents write and keep a strict content policy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.spine import WebhookReceiver, staff_page_session
from support.trust import TestClient, TrustSchool, make_school

from relay.api.bodies import clean_text

ACTIONS: list[tuple[str, dict[str, Any] | None]] = [
    ("ack", None), ("claim", None), ("reply", {"text": "好的"}), ("note", {"text": "已电话联系"}),
    ("resolve", None), ("reassign", {"to": "aa2", "reason": "换人"}),
]
ACTION_IDS = [a[0] for a in ACTIONS]


@pytest.fixture(scope="module")
def school(redis_url: str, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustSchool]:
    made = make_school(redis_url, tmp_path_factory.mktemp("access"), receiver.url)
    yield made
    made.close()


@pytest.fixture(scope="module")
def requests(school: TrustSchool) -> dict[str, str]:
    """One request of each kind that matters: a class-1 routine one, a class-2 one, a medical emergency."""
    made = {
        "c1": school.made_request("请问下周几开家长会？"),
        "c2": school.made_request("请问作业本在哪里买？", student_id="s3", guardian_id="g3"),
        "medical": school.made_request("孩子在学校发烧了"),
    }
    assert (made["medical"]["urgency"], made["medical"]["category"]) == ("P0", "medical")
    assert made["c1"]["category"] != "medical" and made["c2"]["category"] != "medical"
    return {name: str(body["id"]) for name, body in made.items()}


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def state(school: TrustSchool, request_id: str) -> tuple[str, int, int]:
    record = json.loads(school.redis.get(f"relay:{school.id}:request:{request_id}"))
    return record["status"], len(school.timeline(request_id)), len(school.audit())


# Parents: their own requests only ----------------------------------------------------------------


def test_a_parent_reads_only_their_own_requests(school: TrustSchool, requests: dict[str, str]) -> None:
    mine = requests["c1"]
    assert school.client.get(f"/v1/requests/{mine}", headers=school.parent("g1")).status_code == 200
    refused(school.client.get(f"/v1/requests/{mine}", headers=school.parent("g2")), 404, "not_found")
    # The sibling school's g1 is another person with the same id.
    refused(school.client.get(f"/v1/requests/{mine}", headers=school.parent("g1", school.other_id)), 404, "not_found")
    for guardian, school_id in (("g2", school.id), ("g1", school.other_id)):
        listed = school.client.get("/v1/requests", headers=school.parent(guardian, school_id)).json()["requests"]
        assert mine not in {r["id"] for r in listed}
        exported = school.client.get("/v1/me/export", headers=school.parent(guardian, school_id)).json()
        assert mine not in {r["id"] for r in exported["requests"]}


def test_a_parent_knows_only_their_own_children(school: TrustSchool) -> None:
    assert [c["id"] for c in school.client.get("/v1/me", headers=school.parent("g2")).json()["children"]] == ["s2"]
    other = school.client.get("/v1/me", headers=school.parent("g1", school.other_id)).json()
    assert other["school"]["id"] == school.other_id


def test_a_parent_writes_only_about_their_own_children(school: TrustSchool) -> None:
    refused(school.submit("孩子发烧了", student_id="s3", guardian_id="g1"), 404, "unknown_student")
    refused(school.submit("孩子发烧了", student_id="s1", guardian_id="g3"), 404, "unknown_student")


@pytest.mark.parametrize(("action", "body"), ACTIONS, ids=ACTION_IDS)
def test_a_parent_cannot_act_as_staff(school: TrustSchool, requests: dict[str, str], action: str,
                                      body: dict[str, Any] | None) -> None:
    before = state(school, requests["c1"])
    refused(school.client.post(f"/v1/requests/{requests['c1']}/{action}", json=body, headers=school.parent("g1")),
            403, "staff_only")
    assert state(school, requests["c1"]) == before


# Staff: their school's requests; acting takes the class, the role or the leadership ----------------


@pytest.mark.parametrize(("action", "body"), ACTIONS, ids=ACTION_IDS)
def test_staff_of_another_school_find_nothing(school: TrustSchool, requests: dict[str, str], action: str,
                                              body: dict[str, Any] | None) -> None:
    for request_id in requests.values():
        before = state(school, request_id)
        for staff_id in ("aa", "principal", "nurse"):
            response = school.client.post(f"/v1/requests/{request_id}/{action}", json=body,
                                          headers=school.staff(staff_id, school.other_id))
            refused(response, 404, "not_found")
        assert state(school, request_id) == before


def test_staff_of_another_school_neither_read_nor_list(school: TrustSchool, requests: dict[str, str]) -> None:
    other = school.staff("principal", school.other_id)
    for request_id in requests.values():
        refused(school.client.get(f"/v1/requests/{request_id}", headers=other), 404, "not_found")
    listed = school.client.get("/v1/queue", headers=other).json()["requests"]
    assert not set(requests.values()) & {r["id"] for r in listed}


NOT_THEIRS = [("c1", "aa3"), ("c1", "nurse"), ("c1", "safety"), ("c2", "aa"), ("c2", "hr"), ("c2", "aa2"),
              ("medical", "aa3")]


@pytest.mark.parametrize(("which", "staff_id"), NOT_THEIRS, ids=[f"{w}-{s}" for w, s in NOT_THEIRS])
@pytest.mark.parametrize(("action", "body"), ACTIONS, ids=ACTION_IDS)
def test_colleagues_whose_request_it_is_not_are_refused(
    school: TrustSchool, requests: dict[str, str], which: str, staff_id: str, action: str, body: dict[str, Any] | None,
) -> None:
    request_id = requests[which]
    before = state(school, request_id)
    response = school.client.post(f"/v1/requests/{request_id}/{action}", json=body, headers=school.staff(staff_id))
    refused(response, 403, "not_yours")
    assert state(school, request_id) == before  # no status change, no timeline entry, no audit entry
    # Seeing is not acting: the request is in their school's queue, so its existence is no secret.
    assert school.client.get(f"/v1/requests/{request_id}", headers=school.staff(staff_id)).status_code == 200


MAY_ACT = [("c1", s) for s in ("aa", "aa2", "hr", "duty", "principal", "admin")] + \
          [("c2", s) for s in ("aa3", "principal")] + [("medical", s) for s in ("nurse", "safety", "aa", "duty")]


@pytest.mark.parametrize(("which", "staff_id"), MAY_ACT, ids=[f"{w}-{s}" for w, s in MAY_ACT])
def test_the_class_the_responders_and_the_leaders_may_act(
    school: TrustSchool, requests: dict[str, str], which: str, staff_id: str
) -> None:
    response = school.client.post(f"/v1/requests/{requests[which]}/note", json={"text": f"{staff_id} 看过了"},
                                  headers=school.staff(staff_id))
    assert response.status_code == 200, response.text


def test_whoever_owns_a_request_may_act_on_it(school: TrustSchool) -> None:
    request_id = school.made_request("请问周五几点放学？", student_id="s3", guardian_id="g3")["id"]
    refused(school.client.post(f"/v1/requests/{request_id}/note", json={"text": "x"}, headers=school.staff("aa")),
            403, "not_yours")
    moved = school.client.post(f"/v1/requests/{request_id}/reassign", json={"to": "aa", "reason": "aa 熟悉"},
                               headers=school.staff("aa3"))
    assert moved.status_code == 200 and moved.json()["owner"] == "aa"
    assert school.client.post(f"/v1/requests/{request_id}/reply", json={"text": "下午4点"},
                              headers=school.staff("aa")).status_code == 200


# Pages: the same rule, through one permission function ------------------------------------------


def page_client(school: TrustSchool, staff_id: str, school_id: str | None = None) -> TestClient:
    client = TestClient(school.client.app)
    token = school.staff(staff_id, school_id)["Authorization"].split()[1]
    signed_in = staff_page_session(client, token)
    assert signed_in.status_code == 303, signed_in.text
    return client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" content="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_pages_refuse_actions_that_are_not_the_callers(school: TrustSchool, requests: dict[str, str]) -> None:
    request_id = requests["c1"]
    with page_client(school, "aa3") as client:
        page = client.get(f"/staff/requests/{request_id}")
        assert page.status_code == 200
        assert "/reply" not in page.text and "不归您处理" in page.text  # no action forms for someone else's request
        before = state(school, request_id)
        done = client.post(f"/staff/requests/{request_id}/reply", data={"csrf": csrf(page.text), "text": "越权回复"},
                           follow_redirects=False)
        assert done.status_code == 403
        assert state(school, request_id) == before
    with page_client(school, "nurse") as client:
        console = client.get("/nurse")
        before = state(school, request_id)
        done = client.post(f"/nurse/requests/{request_id}/handled", data={"csrf": csrf(console.text)},
                           follow_redirects=False)
        assert done.status_code == 403
        assert state(school, request_id) == before
    with page_client(school, "aa", school.other_id) as client:
        assert client.get(f"/staff/requests/{request_id}").status_code == 404
    with page_client(school, "aa") as client:
        page = client.get(f"/staff/requests/{request_id}")
        assert "/reply" in page.text
        done = client.post(f"/staff/requests/{request_id}/note", data={"csrf": csrf(page.text), "text": "页面备注"},
                           follow_redirects=False)
        assert done.status_code == 303


# The audit log --------------------------------------------------------------------------------


def test_every_staff_action_is_audited_without_the_text(school: TrustSchool) -> None:
    request_id = school.made_request("请问下周的校服怎么订？")["id"]
    in_order = sorted(ACTIONS, key=lambda a: a[0] == "resolve")  # resolving last: nothing acts on a closed request
    for action, body in in_order:
        response = school.client.post(f"/v1/requests/{request_id}/{action}", json=body, headers=school.staff("aa"))
        assert response.status_code == 200, (action, response.text)
    entries = [e for e in school.audit() if e["request_id"] == request_id]
    assert [e["action"] for e in entries] == [a[0] for a in in_order]
    assert all(set(e) == {"at", "staff_id", "action", "request_id"} and e["staff_id"] == "aa" for e in entries)
    raw = json.dumps(school.audit(), ensure_ascii=False)
    assert "好的" not in raw and "已电话联系" not in raw and "换人" not in raw and "校服" not in raw


def test_opening_a_medical_request_is_audited_and_a_routine_one_is_not(
    school: TrustSchool, requests: dict[str, str]
) -> None:
    def views(request_id: str) -> list[dict[str, str]]:
        return [e for e in school.audit() if e["request_id"] == request_id and e["action"] == "view"]

    before = len(views(requests["medical"]))
    assert school.client.get(f"/v1/requests/{requests['medical']}", headers=school.staff("aa3")).status_code == 200
    with page_client(school, "duty") as client:
        assert client.get(f"/staff/requests/{requests['medical']}").status_code == 200
        assert client.get(f"/staff/requests/{requests['c1']}").status_code == 200
    assert [e["staff_id"] for e in views(requests["medical"])][before:] == ["aa3", "duty"]
    assert views(requests["c1"]) == []
    # The parent reading their own request is not a staff view.
    school.client.get(f"/v1/requests/{requests['medical']}", headers=school.parent("g1"))
    assert len(views(requests["medical"])) == before + 2


def test_nothing_but_actions_writes_the_audit_log(school: TrustSchool) -> None:
    app = school.client.app
    paths = [getattr(route, "path", "") for route in app.routes]  # type: ignore[attr-defined]
    assert not [p for p in paths if "audit" in p]


def test_relay_audit_prints_the_log(school: TrustSchool, requests: dict[str, str]) -> None:
    school.client.post(f"/v1/requests/{requests['c2']}/ack", headers=school.staff("aa3"))
    done = school.relay("audit", "--school", school.id)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"school_id": school.id, "staff_id": "aa3", "action": "ack", "request_id": requests["c2"]}.items() <= \
        next(e for e in lines if e["action"] == "ack" and e["request_id"] == requests["c2"]).items()
    assert len(lines) == len(school.audit())
    recent = school.relay("audit", "--school", school.id, "--since", "1h")
    assert len(recent.stdout.splitlines()) == len(lines)
    future = school.relay("audit", "--school", school.id, "--since", "2999-01-01")
    assert future.returncode == 0 and future.stdout == ""
    assert school.relay("audit", "--since", "yesterday-ish").returncode == 2


# What parents write is shown escaped, under a strict content policy --------------------------------


def test_html_in_a_message_is_escaped_on_the_staff_pages(school: TrustSchool) -> None:
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    request_id = school.made_request(attack + "孩子今天请假")["id"]
    with page_client(school, "aa") as client:
        page = client.get(f"/staff/requests/{request_id}")
        client.post(f"/staff/requests/{request_id}/reply", data={"csrf": csrf(page.text), "text": "<b>好</b>"})
        for html in (client.get(f"/staff/requests/{request_id}").text, client.get("/staff").text):
            assert "<script>alert(1)" not in html and "<img src=x" not in html
        shown = client.get(f"/staff/requests/{request_id}").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
        assert "&lt;b&gt;好&lt;/b&gt;" in shown
    urgent = school.made_request("孩子在学校发烧了" + attack, student_id="s2", guardian_id="g2")
    assert urgent["urgency"] == "P0"
    with page_client(school, "nurse") as client:
        console = client.get("/nurse").text
        assert urgent["id"] in console and "<script>alert(1)" not in console and "&lt;script&gt;" in console
    # The scripts fill pages with textContent, never as HTML.
    for script in Path("relay/pages/static").glob("*.js"):
        source = script.read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source), script


def test_pages_carry_a_strict_content_security_policy(school: TrustSchool, requests: dict[str, str]) -> None:
    with page_client(school, "aa") as client:
        for path in ("/privacy", "/staff/login", "/p", f"/staff/requests/{requests['c1']}", "/staff"):
            response = client.get(path)
            assert response.status_code == 200, path
            policy = {part.split()[0]: part.split()[1:] for part in response.headers["content-security-policy"].split("; ")}
            assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
            assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
            assert policy["base-uri"] == ["'none'"]
            assert not [v for values in policy.values() for v in values if "unsafe" in v]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_the_privacy_notice_is_chinese_and_versioned(school: TrustSchool) -> None:
    from relay.pages.privacy import NOTICE_VERSION

    page = school.client.get("/privacy").text
    assert NOTICE_VERSION in page and "健康信息" in page and "单独同意" in page


# Bad input -----------------------------------------------------------------------------------


def nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def test_json_nested_deeper_than_eight_is_refused(school: TrustSchool) -> None:
    headers = dict(school.parent("g1"), **{"Content-Type": "application/json"})
    too_deep = json.dumps({"student_id": "s1", "text": "孩子今天请假", "extra": nested(8)})  # 9 levels in all
    refused(school.client.post("/v1/requests", content=too_deep, headers=headers), 422, "invalid_body")
    fine = json.dumps({"student_id": "s1", "text": "孩子今天请假", "extra": nested(7)})
    assert school.client.post("/v1/requests", content=fine, headers=headers).status_code == 201
    refused(school.client.post("/v1/auth/refresh", content=json.dumps({"refresh_token": nested(9)}),
                               headers={"Content-Type": "application/json"}), 422, "invalid_body")


HIDDEN = {
    "bidi override": "\u202e", "bidi isolate": "\u2066", "pop isolate": "\u2069", "arabic letter mark": "\u061c",
    "left-to-right mark": "\u200e", "zero width space": "\u200b", "word joiner": "\u2060", "soft hyphen": "\u00ad",
    "byte order mark": "\ufeff", "tag letter": "\U000e0041", "hangul filler": "\u3164", "bell": "\x07",
    "interlinear annotation": "\ufff9",
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_format_and_control_characters_are_stripped(char: str) -> None:
    assert clean_text(f"孩子{char}发烧了") == "孩子发烧了"


def test_text_is_nfc_with_plain_newlines() -> None:
    assert clean_text("Jose\u0301\r\n第二行\u2028第三行") == "José\n第二行\n第三行"
    assert clean_text("好的👍\ufe0f") == "好的👍\ufe0f"  # a variation selector is not hidden text


def test_a_stored_message_has_no_bidi_tricks(school: TrustSchool) -> None:
    created = school.made_request("孩子\u202e\u2066明天请假\u2069")
    stored = json.loads(school.redis.get(f"relay:{school.id}:request:{created['id']}"))
    assert stored["text"] == "孩子明天请假"


def test_a_plain_get_of_a_token_link_signs_nobody_in(school: TrustSchool) -> None:
    """Login CSRF: another site's <img src=/staff/login?token=THEIRS> must not put a browser into their session."""
    client = TestClient(school.client.app)
    token = school.staff("aa")["Authorization"].split()[1]
    shown = client.get("/staff/login", params={"token": token}, follow_redirects=False)
    assert shown.status_code == 200 and 'action="/staff/login/token"' in shown.text
    assert "relay_staff" not in shown.cookies and "relay_staff" not in client.cookies
    assert client.get("/staff", follow_redirects=False).status_code == 303, "still signed out"
    # A POST from elsewhere has no form cookie to match: refused, nobody signed in.
    forged = TestClient(school.client.app).post("/staff/login/token", data={"csrf": "x", "token": token},
                                                follow_redirects=False)
    assert forged.status_code == 403 and "relay_staff" not in forged.cookies
    assert staff_page_session(client, token).headers["location"] == "/staff"
    assert client.get("/staff", follow_redirects=False).status_code == 200
