"""Delivery and escalation against real workers: retries, fallback to the next contact, dead letters,
a worker killed mid-send, acknowledgement stopping escalation, and the one-click link."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from support.spine import SECRET_KEY, Post, School, Schools, Stack, WebhookReceiver, caller_token, wait_until

from relay.base import links
from relay.base.settings import Settings

# P1 attendance (today): the owner and the homeroom teacher are told at once, whatever the hour
# (P2/P3 wait for school hours, so they would make these tests depend on the clock).
ABSENCE = "孩子今天发烧在家，请假一天"
FEVER = "孩子在学校发烧了"  # P0 medical: the owner and the nurse

FAST_P0 = {"P0": {"ack_within": "2s", "escalation": [{"after": "2s", "notify": ["role:duty_leader"]}]}}


def to(school: School, staff_id: str, request_id: str, path: str | None = None) -> Callable[[Post], bool]:
    def match(post: Post) -> bool:
        return post.path == (path or school.path(staff_id)) and post.json()["request"]["id"] == request_id

    return match


def submit(school: School, text: str, student_id: str = "s1") -> str:
    response = school.submit(text, student_id=student_id)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def kinds_for(school: School, request_id: str, event_id: str) -> list[str]:
    return [e["kind"] for e in school.timeline(request_id) if e.get("event_id") == event_id]


def test_a_failing_receiver_is_retried_until_it_recovers(school: School, receiver: WebhookReceiver) -> None:
    receiver.answer(school.path("aa"), 500, 429)

    request_id = submit(school, ABSENCE)

    done = receiver.wait_for(lambda p: to(school, "aa", request_id)(p) and p.status == 200, 10, "the retried POST")
    posts = receiver.received(to(school, "aa", request_id))
    assert [p.status for p in posts] == [500, 429, 200]
    assert [p.json()["attempt"] for p in posts] == [1, 2, 3]
    assert {p.event_id for p in posts} == {done.event_id}
    event_id = str(done.event_id)
    school.wait_timeline(request_id, lambda e: e["kind"] == "delivered" and e["event_id"] == event_id)
    assert kinds_for(school, request_id, event_id) == ["delivery_retry", "delivery_retry", "delivered"]
    retries = [e for e in school.timeline(request_id) if e["kind"] == "delivery_retry"]
    assert [e["reason"] for e in retries] == ["server", "rate_limited"]
    assert [e["vendor_code"] for e in retries] == ["500", "429"]


def test_a_receiver_that_is_down_is_retried_until_it_is_back(
    schools: Schools, private_receiver: WebhookReceiver
) -> None:
    school = schools.new(receiver_url=private_receiver.url)
    private_receiver.down()

    request_id = submit(school, ABSENCE)

    school.wait_timeline(request_id, lambda e: e["kind"] == "delivery_retry" and e["to"] == "aa" and e["attempt"] >= 2,
                         10, "two refused attempts to the owner")
    private_receiver.up()
    done = private_receiver.wait_for(to(school, "aa", request_id), 10, "the POST once the receiver is back")
    assert done.status == 200 and done.json()["attempt"] >= 3
    delivered = school.wait_timeline(request_id, lambda e: e["kind"] == "delivered" and e["event_id"] == done.event_id)
    assert delivered["attempt"] == done.json()["attempt"]
    assert kinds_for(school, request_id, str(done.event_id))[-1] == "delivered"
    assert "delivery_failed" not in {e["kind"] for e in school.timeline(request_id)}


def test_a_permanent_refusal_falls_back_to_the_next_contact(schools: Schools, receiver: WebhookReceiver) -> None:
    gone, second_path = f"/{uuid.uuid4().hex}/aa-gone", f"/{uuid.uuid4().hex}/aa-second"
    school = schools.new(contacts={"aa": [
        {"channel": "webhook", "url": receiver.url + gone},
        {"channel": "webhook", "url": receiver.url + second_path},
    ]})
    receiver.answer(gone, 410)

    request_id = submit(school, ABSENCE)

    second = receiver.wait_for(to(school, "aa", request_id, second_path), 10, "the second contact")
    first = receiver.received(to(school, "aa", request_id, gone))
    assert [p.status for p in first] == [410]  # a 4xx is not retried
    assert second.status == 200 and second.event_id == first[0].event_id
    school.wait_timeline(request_id, lambda e: e["kind"] == "delivered" and e["event_id"] == second.event_id)
    assert kinds_for(school, request_id, str(second.event_id)) == ["delivery_fallback", "delivered"]
    fallback = next(e for e in school.timeline(request_id) if e["kind"] == "delivery_fallback")
    assert (fallback["reason"], fallback["vendor_code"], fallback["next_channel"]) == ("client", "410", "webhook")
    assert school.stack.redis.llen(f"relay:{school.id}:deadletters") == 0


def test_when_no_contact_is_left_the_notification_is_a_dead_letter(schools: Schools, receiver: WebhookReceiver) -> None:
    gone, forbidden = f"/{uuid.uuid4().hex}/aa-gone", f"/{uuid.uuid4().hex}/aa-forbidden"
    school = schools.new(contacts={"aa": [
        {"channel": "webhook", "url": receiver.url + gone},
        {"channel": "webhook", "url": receiver.url + forbidden},
    ]})
    receiver.answer(gone, 410)
    receiver.answer(forbidden, 404)

    request_id = submit(school, ABSENCE)

    failed = school.wait_timeline(request_id, lambda e: e["kind"] == "delivery_failed", 10, "delivery_failed")
    assert failed["to"] == "aa" and failed["reason"] == "client"
    assert kinds_for(school, request_id, failed["event_id"]) == ["delivery_fallback", "delivery_failed"]
    letters = [json.loads(raw) for raw in school.stack.redis.lrange(f"relay:{school.id}:deadletters", 0, -1)]
    assert [(d["event_id"], d["state"], d["staff_id"]) for d in letters] == [(failed["event_id"], "failed", "aa")]


def test_a_worker_killed_mid_send_does_not_lose_the_notification(
    stack: Stack, school: School, receiver: WebhookReceiver, record_property: Callable[[str, Any], None]
) -> None:
    stack.ensure_workers(2)
    hold = receiver.hold_next(school.path("nurse"))
    try:
        request_id = submit(school, FEVER)
        assert hold.arrived.wait(10), "the nurse's first POST never arrived"
        assert hold.post is not None
        event_id = str(hold.post.event_id)
        # The worker is inside its HTTP call (the receiver has not answered): kill it there.
        pid = wait_until(lambda: stack.busy_with((school.id, event_id)), 2, "the worker sending to the nurse")
        stack.kill9(pid)
        killed_at = time.monotonic()
        assert len(stack.live_workers()) >= 1

        redelivered = receiver.wait_for(
            lambda p: p.path == school.path("nurse") and p.event_id == event_id and p.at > killed_at
            and 200 <= p.status < 300, 15, "the nurse's notification from another worker")
        recovery = redelivered.at - killed_at
        print(f"recovery after kill -9: {recovery:.2f}s (lease {stack.env['RELAY_DELIVERY_LEASE_SECONDS']}s)")
        record_property("recovery_seconds", round(recovery, 3))

        assert redelivered is not hold.post  # a second send, by a live worker (the held one is never answered)
        assert redelivered.json()["request"]["id"] == request_id
        school.wait_timeline(request_id, lambda e: e["kind"] == "delivered" and e["event_id"] == event_id)
        assert recovery < 10
    finally:
        hold.release()
        stack.ensure_workers(2)


def test_an_acknowledged_p0_never_escalates_and_an_unacknowledged_one_does(
    schools: Schools, receiver: WebhookReceiver, record_property: Callable[[str, Any], None]
) -> None:
    school = schools.new(sla=FAST_P0)
    acked = submit(school, FEVER)
    ack = school.client.post(f"/v1/requests/{acked}/ack", headers=school.staff("aa"))
    assert ack.status_code == 200, ack.text
    assert ack.json()["status"] == "acknowledged" and ack.json()["acknowledged_by"] == "aa"

    # The witness: due after the first, with the same clock and the same scheduler.
    started = time.monotonic()
    ignored = submit(school, FEVER, student_id="s2")
    escalation = receiver.wait_for(to(school, "duty", ignored), 15, "the duty leader's escalation")
    record_property("escalation_after_seconds", round(escalation.at - started, 3))

    document = escalation.json()
    assert document["event"] == "request.escalated"
    assert document["recipient"]["role"] == "escalation"
    assert document["request"]["escalation_step"] == 1
    step = school.wait_timeline(ignored, lambda e: e["kind"] == "escalated")
    assert (step["step"], step["notify"]) == (1, ["duty"])
    assert escalation.at - started >= 1.5  # never before the due time (2s, whole-second timestamps)

    # Everything the first request's timer would have done is done for the second: the first did nothing.
    school.wait_timeline(ignored, lambda e: e["kind"] == "delivered" and e["to"] == "duty")
    assert "escalated" not in {e["kind"] for e in school.timeline(acked)}
    assert school.record(acked)["escalation_step"] == 0
    assert not receiver.received(to(school, "duty", acked))
    assert school.stack.redis.zscore(f"relay:{school.id}:timers", f"escalate|{acked}|1") is None


def test_the_one_click_link_acknowledges_after_a_confirmation(
    stack: Stack, school: School, receiver: WebhookReceiver
) -> None:
    request_id = submit(school, FEVER)
    nurse = receiver.wait_for(to(school, "nurse", request_id), 10, "the nurse's notification")
    status_url = nurse.json()["request"]["status_url"]
    assert status_url.startswith(stack.env["RELAY_PUBLIC_URL"]) and request_id in status_url

    # The link Relay sent is short: RELAY_PUBLIC_URL/a/ and a 12-character code (an SMS variable holds 35).
    link = nurse.json()["request"]["ack_url"]
    code = link.removeprefix(stack.env["RELAY_PUBLIC_URL"] + "/a/")
    assert re.fullmatch("[A-Za-z0-9]{12}", code), link
    assert code.startswith(links.school_tag(school.id))
    assert stack.redis.ttl(f"relay:{school.id}:ack-link:{code}") > 23 * 3600  # expires with the grant (24 h)
    path = f"/a/{code}"

    page = school.client.get(path)
    assert page.status_code == 200
    assert "<form" in page.text and 'method="post"' in page.text
    assert school.record(request_id)["status"] == "received"  # opening (a link preview) acknowledges nothing

    done = school.client.post(path)
    assert done.status_code == 200
    stored = school.record(request_id)
    assert (stored["status"], stored["acknowledged_by"]) == ("acknowledged", "nurse")
    entry = school.wait_timeline(request_id, lambda e: e["kind"] == "acknowledged")
    assert (entry["by"], entry["via"]) == ("nurse", "link")


def test_a_retry_of_one_notification_carries_the_same_link(stack: Stack, school: School) -> None:
    settings = Settings(secret_key=SECRET_KEY, public_url="http://relay.test")
    first = links.issue(stack.redis, settings, school.id, "r1", "nurse", "r1.urgent.0.nurse")
    assert links.issue(stack.redis, settings, school.id, "r1", "nurse", "r1.urgent.0.nurse") == first
    assert links.issue(stack.redis, settings, school.id, "r1", "nurse", "r1.escalated.1.nurse") != first


def test_a_link_sent_before_short_codes_still_acknowledges_until_it_expires(school: School) -> None:
    request_id = submit(school, FEVER)
    settings = Settings(secret_key=SECRET_KEY, public_url="http://relay.test")
    assert school.client.post(f"/a/{links.grant(settings, school.id, request_id, 'nurse')}").status_code == 200
    assert school.record(request_id)["acknowledged_by"] == "nurse"


def _tampered(code: str) -> str:
    return code[:-1] + ("A" if code[-1] != "A" else "B")


@pytest.mark.parametrize("make", [
    lambda code, grant, school: _tampered(code),
    lambda code, grant, school: links.school_tag(school.id) + "0123456789",  # well formed, never issued
    lambda code, grant, school: code + "x",
    lambda code, grant, school: grant[:-2] + ("AA" if not grant.endswith("AA") else "BB"),
    lambda code, grant, school: caller_token("staff", "nurse", school.id),  # a bearer token is not a link
    lambda code, grant, school: links.grant(Settings(secret_key="another-key", public_url="http://x"), school.id,
                                            "r0", "nurse"),
], ids=["tampered code", "unknown code", "long code", "tampered grant", "bearer token", "another key"])
def test_a_bad_link_is_a_404_page_and_acknowledges_nothing(stack: Stack, school: School, make: Any) -> None:
    request_id = submit(school, FEVER)
    settings = Settings(secret_key=SECRET_KEY, public_url="http://relay.test")
    code = links.issue(stack.redis, settings, school.id, request_id, "nurse", f"{request_id}.test.0.nurse")
    token = make(code, links.grant(settings, school.id, request_id, "nurse"), school)

    assert school.client.get(f"/a/{token}").status_code == 404
    answer = school.client.post(f"/a/{token}")
    assert answer.status_code == 404 and "链接无效" in answer.text
    assert school.record(request_id)["status"] == "received"


def test_a_code_whose_grant_expired_acknowledges_nothing(stack: Stack, school: School) -> None:
    """The code is only a pointer: the signed grant it stands for is verified on every use."""
    request_id = submit(school, FEVER)
    settings = Settings(secret_key=SECRET_KEY, public_url="http://relay.test", link_ttl_seconds=-1)
    code = links.issue(stack.redis, settings.model_copy(update={"link_ttl_seconds": 60}), school.id, request_id,
                       "nurse", f"{request_id}.expired.0.nurse")
    stack.redis.set(f"relay:{school.id}:ack-link:{code}", links.grant(settings, school.id, request_id, "nurse"))
    expired = school.client.post(f"/a/{code}")
    assert expired.status_code == 410 and "链接已过期" in expired.text  # gone, and the page says why
    assert school.record(request_id)["status"] == "received"
