"""Parents can say it is urgent; staff can correct the triage. Against real `relay serve` and
`relay worker` processes, a real Redis and the webhook receiver: what each change pages, what it
disarms, what the timeline and the corrections keep."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from support.spine import RELAY, ROOT, Post, School, Schools, WebhookReceiver

HOMEWORK = "请问这周的数学作业是什么？"  # P2 academic: nobody is paged now
FEVER = "孩子在学校发烧了"  # P0 medical
FAST_P0 = {"P0": {"ack_within": "1s", "escalation": [{"after": "1s", "notify": ["role:duty_leader"]}]}}


def to(school: School, staff_id: str, request_id: str, event: str) -> Callable[[Post], bool]:
    def match(post: Post) -> bool:
        document = post.json()
        return (post.path == school.path(staff_id) and document["request"].get("id") == request_id
                and document["event"] == event)

    return match


def submit(school: School, text: str, **extra: Any) -> dict[str, Any]:
    response = school.submit(text, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_parent_marks_a_routine_request_urgent_and_the_owner_and_nurse_are_paged(
    schools: Schools, receiver: WebhookReceiver
) -> None:
    school = schools.new()
    request = submit(school, HOMEWORK)
    assert request["urgency"] == "P2"

    marked = school.client.post(f"/v1/requests/{request['id']}/urgent", headers=school.parent())
    assert marked.status_code == 200, marked.text
    assert marked.json()["urgency"] == "P0"
    # The owner is paged, and so is the P0 responder of its category (academic: the duty leader).
    receiver.wait_for(to(school, "aa", request["id"], "request.urgent"), 10, "the owner's page")
    receiver.wait_for(to(school, "duty", request["id"], "request.urgent"), 10, "the duty leader's page")
    record = school.record(request["id"])
    assert any("家长标记为紧急" in reason for reason in record["reasons"])
    assert [e["by"] for e in school.timeline(request["id"]) if e["kind"] == "marked_urgent"] == ["guardian"]

    again = school.client.post(f"/v1/requests/{request['id']}/urgent", headers=school.parent())
    assert again.status_code == 200 and again.headers["relay-unchanged"] == "true"
    assert len([e for e in school.timeline(request["id"]) if e["kind"] == "marked_urgent"]) == 1
    # Not someone else's request, and not another school's.
    other = school.client.post(f"/v1/requests/{request['id']}/urgent", headers=school.parent("g2"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_urgent_at_submission_is_p0_with_the_reason_and_a_closed_request_cannot_be_marked(schools: Schools) -> None:
    school = schools.new()
    request = submit(school, HOMEWORK, urgent=True)
    assert request["urgency"] == "P0" and request["category"] == "academic"
    assert any("家长标记为紧急" in reason for reason in school.record(request["id"])["reasons"])

    calm = submit(school, "请问下周几开家长会？", student_id="s2")
    school.client.post(f"/v1/requests/{calm['id']}/resolve", json={}, headers=school.staff("aa"))
    closed = school.client.post(f"/v1/requests/{calm['id']}/urgent", headers=school.parent())
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "already_resolved"
    bad = school.client.post("/v1/requests", json={"student_id": "s1", "text": HOMEWORK, "urgent": "very"},
                             headers=school.parent())
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_field"


def test_staff_lower_a_p0_and_its_escalation_is_disarmed(schools: Schools, receiver: WebhookReceiver) -> None:
    school = schools.new(sla=FAST_P0)
    lowered = submit(school, FEVER)
    witness = submit(school, FEVER, student_id="s3", guardian_id="g2")  # the same chain, left alone
    answer = school.client.post(f"/v1/requests/{lowered['id']}/retriage", headers=school.staff("aa"),
                                json={"urgency": "P2", "category": "medical", "reason": "家长说的是上周的事"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["urgency"] == "P2" and answer.json()["escalation"] == []

    receiver.wait_for(to(school, "duty", witness["id"], "request.escalated"), 15, "the witness's escalation")
    assert not receiver.received(to(school, "duty", lowered["id"], "request.escalated"))
    entry = [e for e in school.timeline(lowered["id"]) if e["kind"] == "retriaged"]
    assert entry and entry[0]["urgency_from"] == "P0" and entry[0]["urgency"] == "P2" and entry[0]["by"] == "aa"


def test_staff_raise_to_p0_pages_as_intake_would_and_the_correction_is_exported(
    schools: Schools, receiver: WebhookReceiver
) -> None:
    school = schools.new()
    request = submit(school, "请问体检报告什么时候发？")
    school.client.post(f"/v1/requests/{request['id']}/ack", headers=school.staff("aa"))
    raised = school.client.post(f"/v1/requests/{request['id']}/retriage", headers=school.staff("aa"),
                                json={"urgency": "P0", "category": "medical", "reason": "孩子呼吸困难"})
    assert raised.status_code == 200, raised.text
    # An emergency needs its own acknowledgement, and the nurse is paged as at intake.
    assert raised.json()["status"] == "received" and raised.json()["urgency"] == "P0"
    receiver.wait_for(to(school, "nurse", request["id"], "request.urgent"), 10, "the nurse's page")

    exported = subprocess.run([RELAY, "corrections", "export", "--school", school.id], capture_output=True,
                              text=True, env=school.stack.env, cwd=ROOT, timeout=60)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["text"], r["urgency"], r["category"]) for r in rows] == [("请问体检报告什么时候发？", "P0", "medical")]
    assert rows[0]["was"]["urgency"] in ("P1", "P2", "P3")


def test_retriage_refuses_unknown_labels_and_other_schools(schools: Schools) -> None:
    school = schools.new()
    request = submit(school, HOMEWORK)
    path = f"/v1/requests/{request['id']}/retriage"
    for body in ({"urgency": "P5", "reason": "x"}, {"urgency": "P1", "category": "weather", "reason": "x"},
                 {"urgency": "P1"}, {"urgency": "P1", "reason": "   "}):
        answer = school.client.post(path, headers=school.staff("aa"), json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] in ("invalid_field", "missing_field", "empty_text")
    foreign = school.client.post(path, headers=school.staff("aa", school.other_id),
                                 json={"urgency": "P0", "reason": "x"})
    assert foreign.status_code == 404
    assert school.record(request["id"])["urgency"] == "P2"
    assert school.client.post(path, headers=school.parent(), json={"urgency": "P0", "reason": "x"}).status_code in (401, 403)
