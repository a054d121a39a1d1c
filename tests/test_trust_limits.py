"""Rate limits on intake: per guardian and per client address, 429 with Retry-After; an emergency over
the limit is still accepted and flagged, never limited into silence."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.spine import WebhookReceiver
from support.trust import TrustSchool, make_school

URGENT = "孩子在学校晕倒了，没有呼吸"
ROUTINE = ["请问下周几开家长会？", "作业本在哪里买？", "校服什么时候发？", "周五几点放学？", "学费怎么交？"]


@pytest.fixture
def make(redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> Iterator[Callable[..., TrustSchool]]:
    made: list[TrustSchool] = []

    def new(**settings: Any) -> TrustSchool:
        school = make_school(redis_url, tmp_path, receiver.url, **settings)
        made.append(school)
        return school

    yield new
    for school in made:
        school.close()


def stored(school: TrustSchool) -> int:
    return len(list(school.redis.scan_iter(f"relay:{school.id}:request:*")))


def test_a_guardian_over_the_limit_gets_429_with_retry_after(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_guardian="3/minute;100/day")
    for text in ROUTINE[:3]:
        assert school.submit(text).status_code == 201
    limited = school.submit(ROUTINE[3])
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited" and limited.json()["error"]["message"]
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert stored(school) == 3
    # Another guardian is not held back by this one.
    assert school.submit(ROUTINE[4], student_id="s3", guardian_id="g3").status_code == 201


def test_an_emergency_over_the_limit_is_accepted_and_flagged(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_guardian="2/minute")
    for text in ROUTINE[:2]:
        assert school.submit(text).status_code == 201
    assert school.submit(ROUTINE[2]).status_code == 429
    urgent = school.submit(URGENT)
    assert urgent.status_code == 201, urgent.text
    assert urgent.json()["urgency"] == "P0"
    request_id = urgent.json()["id"]
    assert "rate_limited_but_urgent" in [e["kind"] for e in school.timeline(request_id)]
    # The staff see why; the parent's timeline tells them nothing about limits.
    staff_view = school.client.get(f"/v1/requests/{request_id}", headers=school.staff("nurse")).json()
    assert "rate_limited_but_urgent" in [e["kind"] for e in staff_view["timeline"]]
    parent_view = school.client.get(f"/v1/requests/{request_id}", headers=school.parent("g1")).json()
    assert "rate_limited_but_urgent" not in [e["kind"] for e in parent_view["timeline"]]
    # Under the limit, an emergency carries no flag.
    calm = make()
    request_id = calm.submit(URGENT).json()["id"]
    assert "rate_limited_but_urgent" not in [e["kind"] for e in calm.timeline(request_id)]


def test_a_retry_of_a_stored_request_is_answered_even_over_the_limit(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_guardian="1/minute")
    key = uuid.uuid4().hex
    headers = dict(school.parent("g1"), **{"Idempotency-Key": key})
    body = {"student_id": "s1", "text": ROUTINE[0]}
    first = school.client.post("/v1/requests", json=body, headers=headers)
    assert first.status_code == 201
    again = school.client.post("/v1/requests", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert school.submit(ROUTINE[1]).status_code == 429
    assert stored(school) == 1


def test_one_client_address_is_limited_across_guardians(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_ip="3/minute")
    for text, (student, guardian) in zip(ROUTINE, [("s1", "g1"), ("s2", "g2"), ("s3", "g3")], strict=False):
        assert school.submit(text, student_id=student, guardian_id=guardian).status_code == 201
    limited = school.submit(ROUTINE[3], student_id="s2", guardian_id="g2")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert school.submit(URGENT, student_id="s3", guardian_id="g3").status_code == 201


def test_counters_live_under_the_relay_prefix_and_expire(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_guardian="5/minute")
    assert school.submit(ROUTINE[0]).status_code == 201
    counters = [k for k in school.redis.scan_iter(f"relay:limits*{school.id}*")]
    assert counters
    assert all(0 < school.redis.ttl(k) <= 180 for k in counters)


def test_a_burst_of_emergency_messages_joins_the_open_emergency(make: Callable[..., TrustSchool]) -> None:
    school = make(rate_limit_guardian="3/minute")
    answers = [school.submit(f"孩子发烧了，39度8，在学校晕倒了 {n}") for n in range(40)]

    assert {a.status_code for a in answers} == {201}  # a real emergency is never refused
    ids = {a.json()["id"] for a in answers}
    assert len(ids) <= 5, ids
    first = answers[0].json()["id"]
    assert answers[1].headers["relay-joined-request"] == first
    follow_ups = [e for e in school.timeline(first) if e["kind"] == "follow_up"]
    assert len(follow_ups) == 39 and follow_ups[-1]["text"].endswith(" 39")
    # Staff are paged about one emergency, and again once for its updates, never 40 times.
    prefix = f"relay:{school.id}:delivery:"
    deliveries = [key.decode().removeprefix(prefix) for key in school.redis.scan_iter(prefix + "*")]
    deliveries = [event_id for event_id in deliveries if ":" not in event_id]  # not the :queued / :lock marks
    events = {event_id.split(".")[1] for event_id in deliveries}
    assert events <= {"urgent", "parent_update", "received"}, events
    repages = [event_id for event_id in deliveries if ".parent_update." in event_id]
    assert 0 < len(repages) <= 3, repages
    # Another family's emergency is its own request.
    other = school.submit("孩子在操场摔伤了，头在流血", student_id="s3", guardian_id="g3")
    assert other.status_code == 201 and other.json()["id"] not in ids


def test_an_emergency_after_the_first_is_resolved_is_a_new_request(make: Callable[..., TrustSchool]) -> None:
    school = make()
    first = school.made_request(URGENT)["id"]
    resolved = school.client.post(f"/v1/requests/{first}/resolve", json={"note": "已送医", "message": "孩子已送医，家长已到。"},
                                  headers=school.staff("aa"))
    assert resolved.status_code == 200, resolved.text
    again = school.made_request(URGENT + "，又晕倒了")
    assert again["id"] != first and again["urgency"] == "P0"
