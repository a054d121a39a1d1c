"""Intake: classify, plan, and store a parent's request with its notifications in one atomic step.

Before the 201 returns, the request, its first timeline entries, its delivery records,
its watchdog and escalation timers and its RQ jobs are committed in one MULTI/EXEC:
a crash can never leave a request stored but unannounced, or announced but not stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from enum import StrEnum

import redis
from rq import Queue

from relay.base import changes, clock, keys, metrics
from relay.base.log import log
from relay.base.runtime import URGENT, Runtime
from relay.base.store import (
    Conflict,
    PlannedStepRecord,
    RequestRecord,
    iso,
    iso_due,
    load,
    new_request_id,
    transition,
    write_request,
)
from relay.core.notice_events import Event
from relay.core.notices import parent_can_hear, queue_notice, queue_parent_notice
from relay.core.retriage import PARENT_MARKED
from relay.core.sla import hold_for_digest, outbreak_reached, track_outbreak
from relay.core.timers import arm, escalate_timer
from routing.calendar import CalendarUnknown, quiet_until
from routing.classifier import Classification, classify
from routing.directory import School, Student
from routing.labels import Urgency
from routing.plan import RoutingPlan, plan

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# relay/core/second_opinion.py, named rather than imported: the API process never calls a model itself.
SECOND_OPINION_JOB = "relay.core.second_opinion.ask"

NOTICE_EVENT = {Urgency.P0: Event.urgent}


class IdempotencyMismatch(Exception):
    """The key was used before with a different body."""


class Outcome(StrEnum):
    created = "created"
    replayed = "replayed"  # a retry with the same Idempotency-Key: the request it stored
    joined = "joined"  # an emergency message added to the guardian's open P0 about the same child


@dataclass(frozen=True)
class Submission:
    guardian_id: str
    student_id: str
    text: str
    category_hint: str | None
    idempotency_key: str | None
    urgent: bool = False  # the parent said it is urgent: P0, whatever the words

    def digest(self) -> str:
        fields: list[object] = [self.student_id, self.text, self.category_hint]
        if self.urgent:  # appended only when set: keys stored before the flag existed still match
            fields.append(True)
        body = json.dumps(fields, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


def first_timeline(record: RequestRecord, notified: list[str]) -> list[dict[str, object]]:
    """The entries intake writes: what was received and how it was classified, then who has it."""
    return [
        {"at": record.created_at, "kind": "received", "urgency": record.urgency, "category": record.category,
         "reasons": record.reasons, "directory_version": record.directory_version},
        {"at": record.created_at, "kind": "assigned", "owner": record.owner, "notified": notified},
    ]


def idempotency_key(school_id: str, guardian_id: str, key: str) -> str:
    return keys.idempotency(school_id, guardian_id, hashlib.sha256(key.encode()).hexdigest()[:32])


def replayable(connection: redis.Redis, school_id: str, guardian_id: str, key: str) -> bool:
    """A retry of a request already stored under this key (answered from the store, never a new one)."""
    return bool(connection.exists(idempotency_key(school_id, guardian_id, key)))


def submit(runtime: Runtime, school: School, version: int, student: Student, sub: Submission) -> tuple[RequestRecord, Outcome]:
    """Store the request. A replay of the same key returns the first record; an emergency message while
    the guardian's P0 about the same child is open joins that request instead of paging staff anew."""
    started = time.perf_counter()
    r = runtime.redis
    idem_key = idempotency_key(school.id, sub.guardian_id, sub.idempotency_key) if sub.idempotency_key else None

    classification = classify(sub.text, sub.category_hint)
    if sub.urgent and classification.urgency is not Urgency.P0:
        classification = Classification(Urgency.P0, classification.category, (*classification.reasons, PARENT_MARKED))
    now = clock.now_in(school.zone)
    routing = plan(classification, student, school, now)
    request_id = new_request_id(now.timestamp())
    at = iso(now)
    record = RequestRecord(
        id=request_id,
        school_id=school.id,
        student_id=student.id,
        class_id=student.class_id,
        guardian_id=sub.guardian_id,
        text=sub.text,
        category_hint=sub.category_hint,
        urgency=classification.urgency,
        category=classification.category,
        reasons=list(classification.reasons),
        owner=routing.owner,
        ack_due_at=iso(routing.ack_due_at) if routing.ack_due_at else None,
        resolve_due_at=iso(routing.resolve_due_at) if routing.resolve_due_at else None,
        eta_text=routing.eta_text,
        estimated=routing.estimated,
        created_at=at,
        updated_at=at,
        escalation=[PlannedStepRecord(step=s.index, due_at=iso_due(s.due_at), notify=list(s.notify))
                    for s in routing.escalation],
        directory_version=version,
    )
    event = NOTICE_EVENT.get(classification.urgency, Event.created)
    # Teachers' evenings: routine notifications out of hours wait for the next school day's digest.
    held_until = None
    if classification.urgency in (Urgency.P2, Urgency.P3):
        try:
            held_until = quiet_until(school, now)
        except CalendarUnknown:
            held_until = None  # without holiday data, telling someone now beats holding blindly

    if classification.urgency is Urgency.P0:
        if idem_key and (replay := _replay(r, school.id, idem_key, sub)) is not None:
            return replay, Outcome.replayed
        joined = _join_open_emergency(runtime, school, sub, routing, at, idem_key)
        if joined is not None:
            return joined, Outcome.joined

    tell_parent = parent_can_hear(r, runtime, record)  # a plain read, before the transaction

    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                if idem_key:
                    pipe.watch(idem_key)
                    seen = pipe.get(idem_key)
                    if seen is not None:
                        first = json.loads(seen)
                        pipe.unwatch()
                        if first["digest"] != sub.digest():
                            raise IdempotencyMismatch()
                        existing = load(r, school.id, first["request_id"])
                        if existing is not None:
                            return existing, Outcome.replayed
                pipe.multi()
                # Notifications first: RQ's enqueue expects the pipeline in MULTI mode, which it now is.
                for notice in routing.notify_now:
                    if held_until is not None:
                        hold_for_digest(pipe, record, notice.staff_id, held_until)
                        continue
                    why_event = Event.fyi if notice.why == "homeroom" else event
                    queue_notice(pipe, runtime, record, notice.staff_id, notice.why, why_event)
                if tell_parent:
                    queue_parent_notice(pipe, runtime, record, Event.received)
                write_request(pipe, record)
                for entry in first_timeline(record, [n.staff_id for n in routing.notify_now]):
                    pipe.rpush(keys.timeline(school.id, record.id), json.dumps(entry, ensure_ascii=False))
                pipe.zadd(keys.guardian_requests(school.id, sub.guardian_id), {record.id: now.timestamp()})
                pipe.zadd(keys.school_requests(school.id), {record.id: now.timestamp()})
                if routing.escalation:
                    first_step = routing.escalation[0]
                    arm(pipe, school.id, escalate_timer(record.id, 1), first_step.due_at.timestamp())
                if idem_key:
                    pipe.set(idem_key, json.dumps({"request_id": record.id, "digest": sub.digest()}),
                             ex=IDEMPOTENCY_TTL_SECONDS)
                if classification.urgency is Urgency.P0:
                    pipe.set(keys.open_emergency(school.id, sub.guardian_id, student.id), record.id,
                             ex=EMERGENCY_POINTER_TTL_SECONDS)
                if runtime.settings.triage_llm_url and classification.urgency is not Urgency.P0:
                    # Asked by a worker after the 201; queued here so that a crash cannot lose the question.
                    runtime.queues[URGENT].enqueue_many([Queue.prepare_data(
                        SECOND_OPINION_JOB, args=(school.id, record.id), timeout=60, result_ttl=0,
                        failure_ttl=86400)], pipeline=pipe)
                counted = track_outbreak(pipe, school, record)  # last: its replies end the list
                replies = pipe.execute()
                break
            except redis.WatchError:
                continue  # a concurrent retry with the same key: read what it stored
    changes.publish(r, school.id, record.id, record.status.value)

    if counted:
        outbreak_reached(runtime, school, record, int(replies[-2]), bool(replies[-1]))
    elapsed = time.perf_counter() - started
    metrics.intake(record.urgency, record.category, elapsed)
    log.info("request_received", request_id=record.id, school_id=school.id, urgency=record.urgency,
             category=record.category, owner=record.owner, notified=len(routing.notify_now),
             ms=round(elapsed * 1000, 2))
    if record.estimated:
        log.warning("due_times_estimated", request_id=record.id, school_id=school.id,
                    reason="no official holidays known for a year the due times reach: weekdays and weekends only")
    return record, Outcome.created


# How long a guardian's emergency messages keep joining their last P0 (while it is open).
EMERGENCY_POINTER_TTL_SECONDS = 24 * 3600


def _replay(r: redis.Redis, school_id: str, idem_key: str, sub: Submission) -> RequestRecord | None:
    seen = r.get(idem_key)
    if seen is None:
        return None
    first = json.loads(seen)
    if first["digest"] != sub.digest():
        raise IdempotencyMismatch()
    return load(r, school_id, first["request_id"])


def _join_open_emergency(
    runtime: Runtime, school: School, sub: Submission, routing: RoutingPlan, at: str, idem_key: str | None
) -> RequestRecord | None:
    """Bound the harm of a burst without refusing an emergency: the message goes on the open P0's timeline
    (staff read it there), and only the first such message pages the owner and the P0's responders again."""
    r = runtime.redis
    older_id = r.get(keys.open_emergency(school.id, sub.guardian_id, sub.student_id))
    if older_id is None:
        return None

    def append(record: RequestRecord, pipe: redis.client.Pipeline) -> None:
        if not record.is_open or record.urgency != Urgency.P0.value or record.guardian_id != sub.guardian_id:
            raise Conflict("not_open_emergency", "the guardian's last emergency is closed")
        record.parent_updates += 1
        pipe.rpush(keys.timeline(school.id, record.id), json.dumps(
            {"at": at, "kind": "follow_up", "by": "guardian", "text": sub.text, "urgent": True,
             "reasons": ["家长在紧急请求未办结时再次发来紧急消息，已并入本请求"]}, ensure_ascii=False))
        if record.parent_updates == 1:
            for staff_id in dict.fromkeys([record.owner, *(n.staff_id for n in routing.notify_now)]):
                queue_notice(pipe, runtime, record, staff_id, "parent_update", Event.parent_update, step=1)
        if idem_key:
            pipe.set(idem_key, json.dumps({"request_id": record.id, "digest": sub.digest()}),
                     ex=IDEMPOTENCY_TTL_SECONDS)

    try:
        done = transition(r, school.id, older_id.decode() if isinstance(older_id, bytes) else str(older_id), append)
    except Conflict:
        return None
    if done is None:
        return None
    record = done[0]
    metrics.emergency_joined()
    log.info("emergency_joined", request_id=record.id, school_id=school.id, updates=record.parent_updates)
    return record
