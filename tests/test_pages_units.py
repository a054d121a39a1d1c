"""The pages' small rules without a browser: follow-up matching, canned replies, safe redirects."""

from __future__ import annotations

import uuid

import pytest
import redis

from relay.base import keys
from relay.base.store import RequestRecord, Status
from relay.core import canned
from relay.core.followups import is_follow_up
from relay.pages.sessions import landing, safe_next
from routing.directory import Staff


def record(created_at: str, **changes: object) -> RequestRecord:
    fields: dict[str, object] = dict(
        id="r" + uuid.uuid4().hex[:12], school_id="s", student_id="s1", class_id="c1", guardian_id="g1",
        text="孩子发烧了", urgency="P1", category="attendance", reasons=[], owner="aa", ack_due_at=None,
        resolve_due_at=None, eta_text="", created_at=created_at, updated_at=created_at, directory_version=1,
    )
    fields.update(changes)
    return RequestRecord.model_validate(fields)


@pytest.mark.parametrize(("newer", "expected"), [
    ({"created_at": "2026-05-11T09:30:00+08:00"}, True),
    ({"created_at": "2026-05-11T10:59:59+08:00"}, True),
    ({"created_at": "2026-05-11T11:00:00+08:00"}, False),  # two hours later: a new matter
    ({"created_at": "2026-05-11T08:59:00+08:00"}, False),  # older than the "older" one
    ({"created_at": "2026-05-11T09:30:00+08:00", "category": "pickup"}, False),
    ({"created_at": "2026-05-11T09:30:00+08:00", "student_id": "s2"}, False),
    ({"created_at": "2026-05-11T09:30:00+08:00", "guardian_id": "g2"}, False),
    ({"created_at": "2026-05-11T09:30:00+08:00", "status": Status.resolved}, False),
])
def test_a_follow_up_is_the_same_parent_child_and_kind_within_two_hours(newer: dict[str, object],
                                                                         expected: bool) -> None:
    older = record("2026-05-11T09:00:00+08:00")
    assert is_follow_up(record(**newer), older) is expected  # type: ignore[arg-type]


def test_a_resolved_request_takes_no_follow_up() -> None:
    older = record("2026-05-11T09:00:00+08:00", status=Status.resolved)
    assert not is_follow_up(record("2026-05-11T09:10:00+08:00"), older)


def test_canned_replies_default_then_school_override(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    school_id = "t-" + uuid.uuid4().hex[:8]
    try:
        defaults = canned.for_school(connection, school_id, "pickup")
        assert defaults and all(reply.zh and reply.en for reply in defaults)
        assert "pickup" in defaults[0].categories  # the ones for this category come first
        canned.set_for_school(connection, school_id, [{"id": "mine", "zh": "好的", "en": "OK"}])
        assert connection.get(keys.canned_replies(school_id)) is not None
        assert [(r.id, r.text("zh"), r.text("en")) for r in canned.for_school(connection, school_id)] == [
            ("mine", "好的", "OK")]
        with pytest.raises(ValueError):
            canned.set_for_school(connection, school_id, [{"id": "bad", "zh": ""}])
        canned.set_for_school(connection, school_id, [])
        assert canned.for_school(connection, school_id) == list(canned.defaults())
    finally:
        connection.delete(keys.canned_replies(school_id))


@pytest.mark.parametrize(("path", "safe"), [
    ("/staff/requests/r1", True), ("/nurse", True), (None, False), ("", False),
    ("//evil.example/x", False), ("/\\evil.example", False), ("https://evil.example", False),
])
def test_only_paths_on_this_site_are_followed_after_sign_in(path: str | None, safe: bool) -> None:
    assert safe_next(path) is safe


def test_nurses_land_on_their_console() -> None:
    assert landing(Staff(id="n", name="刘", roles=("nurse",)), None) == "/nurse"  # type: ignore[arg-type]
    assert landing(Staff(id="a", name="王", roles=("academic_affairs",)), None) == "/staff"  # type: ignore[arg-type]
    assert landing(Staff(id="a", name="王"), "/staff/workload") == "/staff/workload"
