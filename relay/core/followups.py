"""A parent's follow-up to a request still open: written in its thread, or merged into it by staff.

The parent answers in the same thread with POST /v1/requests/{id}/follow-up (`add`): the text joins
the request's timeline and the owner is told. The public intake keeps its contract (a new message is
a new request, 201); the staff page offers the merge when the same guardian wrote about the same
student, in the same category, while an older request was open and less than `FOLLOW_UP_WINDOW` old.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from relay.base import clock, keys, store
from relay.base.runtime import Runtime
from relay.base.store import Conflict, RequestRecord, add_timeline, now_in, text
from relay.core import actions
from relay.core.notice_events import Event
from relay.core.notices import queue_notice
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
    # The newer message lives on in the older request, which stays open: no closing words are owed.
    actions.resolve(runtime, school, newer_id, staff_id, f"merged into {older_id}", require_message=False)
    return done[0] if done else None


# How long a follow-up's Idempotency-Key is remembered (as for POST /v1/requests).
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class KeyReused(Exception):
    """The Idempotency-Key was used before for another follow-up text."""


class _Replayed(Exception):
    """The same follow-up was stored before under this key: nothing to write."""


def _digest(request_id: str, body: str) -> str:
    return hashlib.sha256(json.dumps([request_id, body], ensure_ascii=False).encode()).hexdigest()


def add(runtime: Runtime, school: School, request_id: str, guardian_id: str, body: str,
        idempotency_key: str | None = None) -> RequestRecord | None:
    """The parent answers in the request's thread. None: no such request of this guardian.
    Conflict "already_resolved" on a closed request; KeyReused for a key used with another text."""
    key = (keys.idempotency(school.id, guardian_id, "fu-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32])
           if idempotency_key else None)
    digest = _digest(request_id, body)

    def change(record: RequestRecord, pipe: Any) -> None:
        if record.guardian_id != guardian_id:
            raise LookupError(request_id)
        if key is not None:
            # Read beside the transaction: a concurrent retry wrote the request too, so this attempt's
            # EXEC fails and its retry reads the key the first one stored.
            seen = runtime.redis.get(key)
            if seen is not None:
                raise _Replayed() if text(seen) == digest else KeyReused()
        if not record.is_open:
            raise Conflict("already_resolved", "该请求已办结，如有新情况请重新发送 (the request is already resolved)")
        add_timeline(pipe, record, "follow_up", now_in(record), by="guardian", text=body)
        # Each follow-up is its own notification to the owner: the step is the moment, in ms.
        queue_notice(pipe, runtime, record, record.owner, "owner", Event.follow_up, step=int(clock.now() * 1000))
        if key is not None:
            pipe.set(key, digest, ex=IDEMPOTENCY_TTL_SECONDS)

    try:
        done = store.transition(runtime.redis, school.id, request_id, change)
    except LookupError:
        return None
    except _Replayed:
        return store.load(runtime.redis, school.id, request_id)
    return done[0] if done else None
