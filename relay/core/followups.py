"""A parent's follow-up to a request still open: merged into it by staff instead of worked twice.

The public intake keeps its contract (a new message is a new request, 201). The staff page
offers the merge when the same guardian wrote about the same student, in the same category,
while an older request was open and less than `FOLLOW_UP_WINDOW` old.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from relay.base import store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord, add_timeline, now_in
from relay.core import actions
from routing.directory import School

FOLLOW_UP_WINDOW = dt.timedelta(hours=2)


def _created(record: RequestRecord) -> dt.datetime:
    return dt.datetime.fromisoformat(record.created_at)


def is_follow_up(newer: RequestRecord, older: RequestRecord) -> bool:
    gap = _created(newer) - _created(older)
    return (
        older.id != newer.id
        and older.is_open
        and newer.is_open
        and older.guardian_id == newer.guardian_id
        and older.student_id == newer.student_id
        and older.category == newer.category
        and dt.timedelta(0) <= gap < FOLLOW_UP_WINDOW
    )


def candidates(runtime: Runtime, school: School, newer: RequestRecord) -> list[RequestRecord]:
    """Older open requests that `newer` could be merged into, the most recent first."""
    found = []
    for request_id in store.guardian_request_ids(runtime.redis, school.id, newer.guardian_id, limit=20):
        older = store.load(runtime.redis, school.id, request_id)
        if older is not None and is_follow_up(newer, older):
            found.append(older)
    return found


def merge(runtime: Runtime, school: School, newer_id: str, older_id: str, staff_id: str) -> RequestRecord | None:
    """Append the newer request's text to the older one's timeline, then resolve the newer one.

    Returns the older request; None when the newer one is gone. Conflict when there is no older one
    of that id in the school, or the two are not a parent's follow-up of each other.
    """
    newer = store.load(runtime.redis, school.id, newer_id)
    older = store.load(runtime.redis, school.id, older_id) if older_id else None
    if newer is None:
        return None
    if older is None:
        raise Conflict("unknown_request", "未找到要并入的请求 (no such request to merge into)")
    if not is_follow_up(newer, older):
        raise Conflict("not_a_follow_up", "这两条请求不能合并 (these requests are not a follow-up of each other)")

    def append(record: RequestRecord, pipe: Any) -> None:
        if not record.is_open:
            raise Conflict("already_resolved", "该请求已办结 (the request is already resolved)")
        add_timeline(pipe, record, "follow_up", now_in(record), by=staff_id, text=newer.text,
                     from_request=newer.id, received_at=newer.created_at)

    done = store.transition(runtime.redis, school.id, older_id, append)
    actions.resolve(runtime, school, newer_id, staff_id, f"merged into {older_id}")
    return done[0] if done else None
