"""Requests in Redis: the record, its timeline, its indexes; every state change is one transaction.

Writes take the caller's pipeline so that a request, its timeline entry, its delivery
records, its timers and its RQ jobs are committed in one MULTI/EXEC. State changes
run in a WATCH / MULTI / EXEC retry loop; follow-up jobs go in the same EXEC.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import redis
from pydantic import BaseModel, Field
from redis.client import Pipeline

from relay.base import changes, clock, keys
from routing.labels import Category, Urgency


class Status(StrEnum):
    received = "received"  # waiting for a human
    acknowledged = "acknowledged"  # a human has it
    answered = "answered"  # the parent has a reply
    resolved = "resolved"


OPEN = (Status.received, Status.acknowledged, Status.answered)


class PlannedStepRecord(BaseModel):
    step: int
    due_at: str
    notify: list[str]


class RequestRecord(BaseModel):
    id: str
    school_id: str
    student_id: str
    class_id: str
    guardian_id: str
    text: str
    category_hint: str | None = None
    urgency: Urgency  # stored as "P0".."P3", as the contract spells them
    category: Category
    reasons: list[str]
    status: Status = Status.received
    owner: str
    ack_due_at: str | None
    resolve_due_at: str | None
    eta_text: str
    # The due times run through a year whose holidays nobody knows: planned with weekdays and weekends.
    estimated: bool = False
    created_at: str
    updated_at: str
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    resolved_at: str | None = None
    escalation_step: int = 0
    reminder_step: int = 0  # update reminders taken since the acknowledgement
    parent_updates: int = 0  # further emergency messages from the guardian joined to this P0
    escalation: list[PlannedStepRecord] = Field(default_factory=list)
    directory_version: int
    replies: list[dict[str, Any]] = Field(default_factory=list)
    # Who was paged at once about this emergency (the P0 fan-out, the owner included); [] otherwise.
    told: list[str] = Field(default_factory=list)
    on_site_at: str | None = None  # the nurse's "已到场"
    on_site_by: str | None = None
    outcome: str | None = None  # how a closed emergency ended: relay.core.closing.OUTCOMES
    closing_message: str | None = None  # staff's words to the parent when closing

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def acknowledged(self) -> bool:
        return self.status is not Status.received

    def next_due(self) -> str | None:
        if self.status is Status.received and self.ack_due_at:
            return self.ack_due_at
        return self.resolve_due_at


def text(value: Any) -> str:
    """A Redis reply as str (redis-py answers bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def new_request_id(now: float) -> str:
    # Sortable by time, unguessable by a parent: milliseconds then 64 random bits.
    return f"r{int(now * 1000):x}{os.urandom(8).hex()}"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def iso_due(moment: dt.datetime) -> str:
    """A due time to the second, rounded up: a timer armed from it never fires before the plan."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
    return iso(moment)


def epoch(iso_text: str) -> float:
    return dt.datetime.fromisoformat(iso_text).timestamp()


def timeline_entry(kind: str, at: str, **detail: Any) -> str:
    return json.dumps({"at": at, "kind": kind, **{k: v for k, v in detail.items() if v is not None}}, ensure_ascii=False)


def write_request(pipe: Pipeline, record: RequestRecord) -> None:
    """Save the record and keep the open-queue index in step with its status."""
    pipe.set(keys.request(record.school_id, record.id), record.model_dump_json())
    due = record.next_due()
    if record.is_open and due:
        pipe.zadd(keys.open_requests(record.school_id), {record.id: epoch(due)})
    else:
        pipe.zrem(keys.open_requests(record.school_id), record.id)


def add_timeline(pipe: Pipeline, record: RequestRecord, kind: str, at: str, **detail: Any) -> None:
    pipe.rpush(keys.timeline(record.school_id, record.id), timeline_entry(kind, at, **detail))


def load(connection: redis.Redis | Pipeline, school: str, request_id: str) -> RequestRecord | None:
    raw = connection.get(keys.request(school, request_id))
    return RequestRecord.model_validate_json(raw) if raw else None


def load_timeline(connection: redis.Redis, school: str, request_id: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in connection.lrange(keys.timeline(school, request_id), 0, -1)]


def open_queue(connection: redis.Redis, school: str, limit: int = 500) -> list[RequestRecord]:
    ids = connection.zrange(keys.open_requests(school), 0, limit - 1)
    if not ids:
        return []
    raws = connection.mget([keys.request(school, text(i)) for i in ids])
    return [RequestRecord.model_validate_json(r) for r in raws if r]


def guardian_request_ids(connection: redis.Redis, school: str, guardian_id: str, limit: int = 100) -> list[str]:
    return [text(i) for i in connection.zrevrange(keys.guardian_requests(school, guardian_id), 0, limit - 1)]


T = TypeVar("T")


class Conflict(Exception):
    """The change does not apply to the request's current state."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def transition(
    connection: redis.Redis,
    school: str,
    request_id: str,
    change: Callable[[RequestRecord, Pipeline], T],
) -> tuple[RequestRecord, T] | None:
    """Apply `change` to the current record inside WATCH/MULTI/EXEC, retrying on a concurrent write.

    `change` mutates the record and queues its own writes (timeline, timers, jobs) on the
    pipeline, which is already in MULTI mode; it raises Conflict to refuse. None: no such request.
    """
    key = keys.request(school, request_id)
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                if raw is None:
                    pipe.unwatch()
                    return None
                record = RequestRecord.model_validate_json(raw)
                pipe.multi()
                outcome = change(record, pipe)
                record.updated_at = iso(clock.now_in(_zone_of(record)))
                write_request(pipe, record)
                pipe.execute()
                changes.publish(connection, school, request_id, record.status.value)
                return record, outcome
            except redis.WatchError:
                continue


def _zone_of(record: RequestRecord) -> dt.tzinfo:
    return dt.datetime.fromisoformat(record.created_at).tzinfo or dt.UTC


def now_in(record: RequestRecord) -> str:
    return iso(clock.now_in(_zone_of(record)))
