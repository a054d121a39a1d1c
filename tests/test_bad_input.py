"""Bad input never stores anything and never gets a 500: every refusal is a 4xx
`{"error": {"code", "message"}}`; a store outage at intake is a 503, never a 201."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.spine import (
    SECRET_KEY,
    School,
    Schools,
    caller_token,
    relay_env,
    request_keys,
    start_api,
    stop,
    write_school_yaml,
)

from relay.base import tokens
from relay.cli import embedded


@pytest.fixture(scope="module")
def shared(schools: Schools) -> School:
    """One school for the module: each case counts the stored requests before and after itself."""
    return schools.new()


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]


def post_raw(school: School, body: bytes, headers: dict[str, str] | None = None,
             content_type: str | None = "application/json") -> httpx.Response:
    sent = dict(school.parent("g1"), **{"Idempotency-Key": uuid.uuid4().hex})
    if content_type:
        sent["Content-Type"] = content_type
    sent.update(headers or {})
    return school.client.post("/v1/requests", content=body, headers=sent)


def forged(token: str) -> str:
    kid, payload, mac = token.split(".")
    return f"{kid}.{payload}.{('A' if mac[0] != 'A' else 'B') + mac[1:]}"


def other_payload(token: str, school_id: str) -> str:
    """The signature of one token on the payload of another: a guardian trying to become someone else."""
    kid, _, mac = token.split(".")
    _, payload, _ = caller_token("parent", "g2", school_id).split(".")
    return f"{kid}.{payload}.{mac}"


LONG = "发" * 2001
BODY_CASES: list[tuple[str, Any, int, str]] = [
    ("missing student_id", {"text": "孩子发烧了"}, 422, "missing_field"),
    ("missing text", {"student_id": "s1"}, 422, "missing_field"),
    ("student_id a number", {"student_id": 1001, "text": "孩子发烧了"}, 422, "invalid_field"),
    ("text a list", {"student_id": "s1", "text": ["孩子", "发烧了"]}, 422, "invalid_field"),
    ("text null", {"student_id": "s1", "text": None}, 422, "invalid_field"),
    ("category_hint a number", {"student_id": "s1", "text": "孩子发烧了", "category_hint": 3}, 422, "invalid_field"),
    ("empty student_id", {"student_id": "", "text": "孩子发烧了"}, 422, "invalid_field"),
    ("unknown student", {"student_id": "s-nobody", "text": "孩子发烧了"}, 404, "unknown_student"),
    ("another guardian's child", {"student_id": "s3", "text": "孩子发烧了"}, 404, "unknown_student"),
    ("empty text", {"student_id": "s1", "text": ""}, 422, "empty_text"),
    ("whitespace-only text", {"student_id": "s1", "text": " \n\t\u3000 "}, 422, "empty_text"),
    ("invisible-only text", {"student_id": "s1", "text": "\u200b\u200d\ufeff"}, 422, "empty_text"),
    ("over-long text", {"student_id": "s1", "text": LONG}, 422, "text_too_long"),
]


@pytest.mark.parametrize(("body", "status", "code"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_bad_bodies_are_refused_and_store_nothing(shared: School, body: Any, status: int, code: str) -> None:
    before = shared.request_keys()
    response = shared.client.post("/v1/requests", json=body,
                                  headers=dict(shared.parent("g1"), **{"Idempotency-Key": uuid.uuid4().hex}))
    assert_refused(response, status, code)
    assert shared.request_keys() == before


RAW_CASES: list[tuple[str, bytes, str | None, int, str]] = [
    ("invalid JSON", b'{"student_id": "s1", "text": ', "application/json", 400, "invalid_json"),
    ("not UTF-8", b'{"student_id": "s1", "text": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("a JSON array", '[{"student_id": "s1", "text": "孩子发烧了"}]'.encode(), "application/json", 422, "invalid_body"),
    ("JSON null", b"null", "application/json", 422, "invalid_body"),
    ("too deep", b"[" * 5000, "application/json", 400, "invalid_json"),
    ("a 5000-digit number", b'{"student_id": "s1", "text": ' + b"9" * 5000 + b"}", "application/json", 400,
     "invalid_json"),
    ("lone surrogate only", b'{"student_id": "s1", "text": "\\ud800"}', "application/json", 422, "empty_text"),
    ("wrong content type", b'{"student_id": "s1", "text": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("form encoded", b"student_id=s1&text=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("no content type", b'{"student_id": "s1", "text": "x"}', None, 415, "unsupported_media_type"),
    ("body over the limit", b'{"student_id": "s1", "text": "' + b"a" * 20000 + b'"}', "application/json", 413,
     "body_too_large"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [c[1:] for c in RAW_CASES],
                         ids=[c[0] for c in RAW_CASES])
def test_bad_payloads_are_refused_and_store_nothing(
    shared: School, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    before = shared.request_keys()
    assert_refused(post_raw(shared, body, content_type=content_type), status, code)
    assert shared.request_keys() == before


def test_a_lone_surrogate_inside_text_is_dropped_not_a_500(shared: School) -> None:
    before = shared.request_keys()
    response = post_raw(shared, b'{"student_id": "s1", "text": "\\ud800\xe8\xaf\xb7\xe9\x97\xae\xe4\xbd\x9c\xe4\xb8\x9a"}')
    assert response.status_code == 201, response.text
    assert response.json()["text"] == "请问作业"
    assert len(shared.request_keys()) == len(before) + 1


@pytest.mark.parametrize("key", ["has space", "x" * 129, "tab\there", ""], ids=["space", "too long", "tab", "empty"])
def test_a_bad_idempotency_key_is_refused(shared: School, key: str) -> None:
    before = shared.request_keys()
    response = post_raw(shared, '{"student_id": "s1", "text": "孩子发烧了"}'.encode(), headers={"Idempotency-Key": key})
    assert_refused(response, 400, "invalid_idempotency_key")
    assert shared.request_keys() == before


def test_a_non_ascii_idempotency_key_is_refused(shared: School) -> None:
    before = shared.request_keys()
    headers = dict(shared.parent("g1"), **{"Content-Type": "application/json"})
    response = shared.client.post("/v1/requests", content='{"student_id": "s1", "text": "孩子发烧了"}'.encode(),
                                  headers=[*headers.items(), ("Idempotency-Key", "键".encode())])
    assert_refused(response, 400, "invalid_idempotency_key")
    assert shared.request_keys() == before


def _auth_cases(school: School) -> list[tuple[str, dict[str, Any], int, str]]:
    good = caller_token("parent", "g1", school.id)
    return [
        ("missing token", {}, 401, "missing_token"),
        ("not bearer", {"Authorization": f"Basic {good}"}, 401, "missing_token"),
        ("garbage", {"Authorization": "Bearer not-a-token"}, 401, "invalid_token"),
        ("signature altered", {"Authorization": f"Bearer {forged(good)}"}, 401, "invalid_token"),
        ("payload swapped", {"Authorization": f"Bearer {other_payload(good, school.id)}"}, 401, "invalid_token"),
        ("another key", {"Authorization": f"Bearer {caller_token('parent', 'g1', school.id, key='not-our-key')}"},
         401, "invalid_token"),
        ("expired", {"Authorization": f"Bearer {caller_token('parent', 'g1', school.id, ttl=-60)}"}, 401,
         "invalid_token"),
        ("non-ASCII signature", {"Authorization": (f"Bearer {good[:-2]}".encode() + b"\xe9\xe9")}, 401,
         "invalid_token"),
        ("an ack link as a token", {"Authorization": "Bearer " + tokens.sign(
            {"purpose": "ack", "sch": school.id, "rid": "r0", "sid": "aa"}, [SECRET_KEY], 600)}, 401, "invalid_token"),
        ("unknown guardian", {"Authorization": f"Bearer {caller_token('parent', 'g-nobody', school.id)}"}, 401,
         "unknown_guardian"),
        ("staff token", school.staff("aa"), 403, "parents_only"),
    ]


AUTH_IDS = ["missing token", "not bearer", "garbage", "signature altered", "payload swapped", "another key",
            "expired", "non-ASCII signature", "an ack link as a token", "unknown guardian", "staff token"]


@pytest.mark.parametrize("case", AUTH_IDS)
def test_bad_callers_cannot_submit(shared: School, case: str) -> None:
    _, auth, status, code = next(c for c in _auth_cases(shared) if c[0] == case)
    before = shared.request_keys()
    headers = [("Content-Type", "application/json"), ("Idempotency-Key", uuid.uuid4().hex),
               *[(k, v) for k, v in auth.items()]]
    response = shared.client.post("/v1/requests", content='{"student_id": "s1", "text": "孩子在学校发烧了"}'.encode(),
                                  headers=headers)
    assert_refused(response, status, code)
    assert shared.request_keys() == before


@pytest.fixture(scope="module")
def stored(shared: School) -> str:
    response = shared.submit("请问下周几开家长会？")
    assert response.status_code == 201
    return str(response.json()["id"])


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/queue", None),
    ("POST", "/v1/requests/{id}/ack", None),
    ("POST", "/v1/requests/{id}/claim", None),
    ("POST", "/v1/requests/{id}/reply", {"text": "好的"}),
    ("POST", "/v1/requests/{id}/resolve", None),
    ("POST", "/v1/requests/{id}/reassign", {"to": "aa2"}),
])
def test_a_parent_token_is_refused_on_staff_endpoints(
    shared: School, stored: str, method: str, path: str, body: Any
) -> None:
    response = shared.client.request(method, path.format(id=stored), json=body, headers=shared.parent("g1"))
    assert_refused(response, 403, "staff_only")
    assert shared.record(stored)["status"] == "received"


def test_staff_endpoints_refuse_bad_bodies_and_strangers(shared: School, stored: str) -> None:
    staff = shared.staff("aa")
    assert_refused(shared.client.post(f"/v1/requests/{stored}/reply", json={"text": " \u200b "}, headers=staff),
                   422, "empty_text")
    assert_refused(shared.client.post(f"/v1/requests/{stored}/reply", json=["好的"], headers=staff), 422, "invalid_body")
    assert_refused(shared.client.post(f"/v1/requests/{stored}/reply", content=b"{", headers=dict(
        staff, **{"Content-Type": "application/json"})), 400, "invalid_json")
    assert_refused(shared.client.post(f"/v1/requests/{stored}/reassign", json={"to": "nobody"}, headers=staff),
                   409, "unknown_staff")
    assert_refused(shared.client.post("/v1/requests/r0123456789abcdef/ack", headers=staff), 404, "not_found")
    # Staff of the sibling school act only in their own school.
    assert_refused(shared.client.post(f"/v1/requests/{stored}/ack", headers=shared.staff("aa", shared.other_id)),
                   404, "not_found")
    assert shared.record(stored)["status"] == "received"
    assert [e["kind"] for e in shared.timeline(stored)].count("acknowledged") == 0


def test_only_the_requests_own_guardian_and_school_can_read_it(shared: School, stored: str) -> None:
    client = shared.client
    assert client.get(f"/v1/requests/{stored}", headers=shared.parent("g1")).status_code == 200
    assert client.get(f"/v1/requests/{stored}", headers=shared.staff("nurse")).status_code == 200
    assert_refused(client.get(f"/v1/requests/{stored}", headers=shared.parent("g2")), 404, "not_found")
    assert_refused(client.get(f"/v1/requests/{stored}", headers=shared.staff("aa", shared.other_id)), 404, "not_found")
    # The sibling school's "g1" is another person: the id alone opens nothing across schools.
    assert_refused(client.get(f"/v1/requests/{stored}", headers={
        "Authorization": f"Bearer {caller_token('parent', 'g1', shared.other_id)}"}), 404, "not_found")
    assert_refused(client.get("/v1/requests/not-an-id", headers=shared.parent("g1")), 404, "not_found")
    assert_refused(client.get(f"/v1/requests/{stored}"), 401, "missing_token")
    assert_refused(client.get(f"/v1/requests/{stored}", headers={
        "Authorization": f"Bearer {forged(caller_token('staff', 'aa', shared.id))}"}), 401, "invalid_token")
    mine = client.get("/v1/requests", headers=shared.parent("g2")).json()["requests"]
    assert stored not in {r["id"] for r in mine}


# A Redis outage at intake -------------------------------------------------------------------------


@pytest.fixture
def private_stack(tmp_path: Path, receiver: Any) -> Iterator[tuple[embedded.EmbeddedRedis, str, str]]:
    """The API alone against an embedded Redis of its own, which the test may stop."""
    server = embedded.EmbeddedRedis(tmp_path / "redis", appendfsync="always").start()
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, receiver.url)
    env = relay_env(server.url, config, "http://127.0.0.1:1")
    api = None
    try:
        api, url = start_api(env, tmp_path)
        yield server, url, school_id
    finally:
        if api is not None:
            stop(api)
        server.stop()


def test_a_redis_outage_at_intake_is_a_503_and_nothing_is_stored(
    private_stack: tuple[embedded.EmbeddedRedis, str, str],
) -> None:
    server, url, school_id = private_stack
    headers = {"Authorization": f"Bearer {caller_token('parent', 'g1', school_id)}"}
    body = {"student_id": "s1", "text": "孩子在学校发烧了"}
    with httpx.Client(base_url=url, timeout=15) as client:
        first = client.post("/v1/requests", json=body, headers=dict(headers, **{"Idempotency-Key": "before"}))
        assert first.status_code == 201, first.text

        server.stop()
        answers = [client.post("/v1/requests", json=body, headers=dict(headers, **{"Idempotency-Key": f"down-{i}"}))
                   for i in range(3)]
        ready = client.get("/readyz")

    for answer in answers:
        assert_refused(answer, 503, "store_unavailable")
        assert answer.headers.get("retry-after")
    assert ready.status_code == 503

    # Back on the same port and data: only the request that got its 201 is there.
    server.start()
    import redis as redis_client

    assert request_keys(redis_client.Redis.from_url(server.url), school_id) == [
        f"relay:{school_id}:request:{first.json()['id']}"]


@pytest.mark.parametrize(("path", "allowed"), [
    ("/v1/admin/directory", "GET, PUT"),  # two routes at one path
    ("/v1/admin/settings", "GET, PUT"),
    ("/staff/login", "GET, POST"),
    ("/v1/requests/r-1/ack", "POST"),
])
def test_405_names_every_method_the_path_serves(shared: School, path: str, allowed: str) -> None:
    response = shared.client.request("DELETE", path, headers=shared.staff("principal"))
    assert_refused(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed
