"""Intake end to end: a parent's request is stored, planned and pushed to the right people's webhooks,
against the real API, real workers and a real Redis."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from support.spine import WEBHOOK_SECRET, Post, School, WebhookReceiver, signature, wait_until

WEBHOOK_KEYS = {"event", "event_id", "request", "recipient", "attempt", "sent_at"}
REQUEST_KEYS = {"id", "urgency", "category", "student_id", "class_id", "text"}
PARENT_KINDS = {"received", "assigned", "acknowledged", "replied", "reassigned", "resolved"}


def for_request(school: School, staff_id: str, request_id: str) -> Callable[[Post], bool]:
    def match(post: Post) -> bool:
        return post.path == school.path(staff_id) and post.json()["request"]["id"] == request_id

    return match


def test_a_fever_at_school_is_p0_medical_and_reaches_nurse_and_owner_signed(
    school: School, receiver: WebhookReceiver
) -> None:
    response = school.submit("孩子在学校发烧了")

    assert response.status_code == 201, response.text
    created = response.json()
    assert {"id", "status", "urgency", "category", "owner", "ack_due_at", "resolve_due_at"} <= created.keys()
    assert (created["status"], created["urgency"], created["category"], created["owner"]) == (
        "received", "P0", "medical", "aa")
    assert created["ack_due_at"] and created["resolve_due_at"]
    request_id = created["id"]

    # Both at once, straight from intake: the nurse and the academic-affairs owner.
    for staff_id, role in (("nurse", "nurse"), ("aa", "owner")):
        post = receiver.wait_for(for_request(school, staff_id, request_id), 10, f"the {staff_id}'s webhook")
        assert post.headers["x-relay-signature"] == signature(post.body, WEBHOOK_SECRET)
        document = post.json()
        assert set(document) == WEBHOOK_KEYS
        assert document["event"] == "request.urgent"
        assert document["event_id"]
        assert REQUEST_KEYS <= document["request"].keys()
        assert (document["request"]["urgency"], document["request"]["category"]) == ("P0", "medical")
        assert (document["request"]["student_id"], document["request"]["class_id"]) == ("s1", "c1")
        assert document["request"]["text"] == "孩子在学校发烧了"
        assert document["recipient"]["id"] == staff_id
        assert document["recipient"]["role"] == role
        assert document["attempt"] == 1
        assert dt.datetime.fromisoformat(document["sent_at"]).tzinfo is not None

    # Durable under the contract's literal keys.
    stored = school.record(request_id)
    assert stored["text"] == "孩子在学校发烧了" and stored["guardian_id"] == "g1"
    assert school.stack.redis.exists(f"relay:{school.id}:request:{request_id}")
    assert school.stack.redis.llen(f"relay:{school.id}:timeline:{request_id}") >= 2
    kinds = [entry["kind"] for entry in school.timeline(request_id)]
    assert kinds[:2] == ["received", "assigned"]

    # Staff see the deliveries on the timeline, eventually.
    def delivered_to_both() -> dict[str, Any] | None:
        view = school.client.get(f"/v1/requests/{request_id}", headers=school.staff("aa")).json()
        delivered = {e["to"] for e in view["timeline"] if e["kind"] == "delivered"}
        return view if {"nurse", "aa"} <= delivered else None

    staff_view = wait_until(delivered_to_both, 10, "delivered entries in the staff view")
    assert staff_view["guardian_id"] == "g1" and staff_view["class_id"] == "c1"

    # The parent sees where the request stands, without the delivery plumbing.
    parent = school.client.get(f"/v1/requests/{request_id}", headers=school.parent("g1"))
    assert parent.status_code == 200
    parent_view = parent.json()
    assert parent_view["id"] == request_id and parent_view["owner"] == "aa" and parent_view["eta_text"]
    assert [e["kind"] for e in parent_view["timeline"]][:2] == ["received", "assigned"]
    assert {e["kind"] for e in parent_view["timeline"]} <= PARENT_KINDS
    assert "guardian_id" not in parent_view and "reasons" not in parent_view
    assert all("to" not in e and "event_id" not in e for e in parent_view["timeline"])


def test_ill_at_home_is_p1_attendance_and_the_homeroom_teacher_is_told_fyi(
    school: School, receiver: WebhookReceiver
) -> None:
    response = school.submit("孩子今天发烧在家，请假一天")

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["urgency"], created["category"], created["owner"]) == ("P1", "attendance", "aa")
    homeroom = receiver.wait_for(for_request(school, "hr", created["id"]), 10, "the homeroom teacher's webhook")
    assert homeroom.json()["event"] == "request.fyi"
    assert homeroom.json()["recipient"]["role"] == "homeroom"
    owner = receiver.wait_for(for_request(school, "aa", created["id"]), 10, "the owner's webhook")
    assert owner.json()["event"] == "request.created"
    # Nobody else is woken for an absence.
    assert not receiver.received(lambda p: p.path == school.path("nurse"))


def test_a_retry_with_the_same_idempotency_key_returns_the_same_request(school: School) -> None:
    key = uuid.uuid4().hex
    first = school.submit("老师您好，孩子的作业本落在学校了", key=key)
    again = school.submit("老师您好，孩子的作业本落在学校了", key=key)

    assert first.status_code == 201 and again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert school.request_keys() == [f"relay:{school.id}:request:{first.json()['id']}"]
    assert school.stack.redis.zcard(f"relay:{school.id}:guardian:g1:requests") == 1


def test_concurrent_retries_with_one_key_store_one_request(school: School) -> None:
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: school.submit("明天的数学考试考哪些内容？", key=key), range(6)))

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(school.request_keys()) == 1
    assert school.stack.redis.zcard(f"relay:{school.id}:guardian:g1:requests") == 1


def test_the_same_key_with_another_body_is_refused_and_stores_nothing(school: School) -> None:
    key = uuid.uuid4().hex
    first = school.submit("请问校服费怎么交？", key=key)
    assert first.status_code == 201
    before = school.request_keys()

    reused = school.submit("孩子在学校被同学欺负了", key=key)

    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert school.request_keys() == before
    assert school.stack.redis.zcard(f"relay:{school.id}:guardian:g1:requests") == 1
    assert json.loads(school.stack.redis.get(f"relay:{school.id}:request:{first.json()['id']}"))["text"] == "请问校服费怎么交？"


def test_a_request_planned_without_a_known_calendar_is_accepted_and_says_its_due_times_are_estimates(
    schools: Any,
) -> None:
    from support.spine import school_document

    from relay.base.directory import publish
    from routing.directory import Directory

    # Terms that ended long ago: nobody has said when school runs now, so the due times are estimates.
    school = schools.new()
    document = school_document(school.id, school.receiver_url)
    document["terms"] = [{"name": "2019-2020学年第二学期", "start": "2020-03-02", "end": "2020-07-10"}]
    publish(school.stack.redis, Directory.model_validate({"schools": [document]}))

    def planned_with_estimate() -> dict[str, Any] | None:
        response = school.submit("请问这周的数学作业是什么")
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body if body["estimated"] else None

    created = wait_until(planned_with_estimate, 10, "a request planned against the new version")
    assert created["urgency"] == "P2" and created["ack_due_at"] and created["resolve_due_at"]
    assert school.record(created["id"])["estimated"] is True
    assert school.submit("孩子在学校发烧了").json()["estimated"] is False  # P0 runs on the wall clock
