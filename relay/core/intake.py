"""Intake: classify, plan, and store a parent's request with its notifications in one atomic step.

Two round trips to Redis: one pipeline reads what intake must know (the rate windows, counted as
they are read; the Idempotency-Key; whether the guardian can be told; their open emergency), and
one Lua script (relay/base/claim.py) claims the key and, only if it won, writes the request, its first
timeline entries, its delivery records, its watchdog and escalation timers and its RQ jobs, and tells
the pages. Before the 201 returns that step has run whole: a crash can never leave a request stored
but unannounced, or announced but not stored, and a retry with the same key never makes a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from relay.base import changes, clock, keys, metrics, replicas
from relay.base.claim import Claim, Written, write
from relay.base.log import log
from relay.base.runtime import URGENT, Runtime
from relay.base.scripts import with_scripts
from relay.base.store import (
    Conflict,
    PlannedStepRecord,
    RequestRecord,
    iso,
    iso_due,
    load,
    new_request_id,
    text,
    timeline_entry,
    transition,
    write_request,
)
from relay.core.enqueue import enqueue
from relay.core.notice_events import Event
from relay.core.notices import parent_channel_on, queue_notice, queue_parent_notice
from relay.core.ratelimit import HIT_SCRIPT, Limit, RateLimited, hit_arguments, waits_from
from relay.core.retriage import PARENT_MARKED
from relay.core.sla import hold_for_digest, outbreak_reached, track_outbreak
from relay.core.timers import arm, escalate_timer
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


@dataclass(frozen=True)
class Limits:
    """The rate limits intake counts a request against, in its read round trip."""

    # Over these, a message that classifies P0 still goes through (flagged on its timeline) and a retry of
    # a stored request is still answered; anything else is refused.
    soft: tuple[Limit, ...] = ()
    # Over these, refused whatever it says (the parent's own "urgent" mark: it pages people).
    hard: tuple[Limit, ...] = ()


@dataclass(frozen=True)
class Intake:
    record: RequestRecord
    outcome: Outcome
    over_limit: bool = False  # created past a soft limit because it is an emergency


def triage(sub: Submission) -> Classification:
    """The message's urgency and category: the classifier's, raised to P0 when the parent marked it urgent."""
    classification = classify(sub.text, sub.category_hint)
    if sub.urgent and classification.urgency is not Urgency.P0:
        classification = Classification(Urgency.P0, classification.category, (*classification.reasons, PARENT_MARKED))
    return classification


@dataclass(frozen=True)
class _Read:
    """What intake's one read round trip found."""

    soft_wait: float | None
    hard_wait: float | None
    seen: bytes | None  # the idempotency key's value: a request already stored under it
    parent_bound: bool
    open_emergency: str | None


def _read(runtime: Runtime, school: School, sub: Submission, idem_key: str | None, p0: bool, limits: Limits) -> _Read:
    """Rate windows, the idempotency key, the guardian's openid and open-emergency pointer: one pipeline."""
    r = runtime.redis
    counted = [*limits.soft, *limits.hard]
    names, argv = hit_arguments(counted)
    tell_parents = parent_channel_on(runtime)

    def run() -> list[Any]:
        with r.pipeline(transaction=False) as pipe:
            if names:
                HIT_SCRIPT.queue(pipe, names, argv)
            if idem_key:
                pipe.get(idem_key)
            if tell_parents:
                pipe.exists(keys.guardian_openid(school.id, sub.guardian_id))
            if p0:
                pipe.get(keys.open_emergency(school.id, sub.guardian_id, sub.student_id))
            return pipe.execute() if len(pipe) else []

    replies = iter(with_scripts(r, [HIT_SCRIPT], run))
    waits = waits_from(counted, next(replies)) if names else [None] * len(counted)
    soft = [w for w in waits[:len(limits.soft)] if w is not None]
    hard = [w for w in waits[len(limits.soft):] if w is not None]
    seen = next(replies) if idem_key else None
    bound = bool(next(replies)) if tell_parents else False
    pointer = next(replies) if p0 else None
    return _Read(max(soft, default=None), max(hard, default=None), seen, bound,
                 text(pointer) if pointer is not None else None)


def submit(
    runtime: Runtime, school: School, version: int, student: Student, sub: Submission,
    classification: Classification | None = None, limits: Limits = Limits(),  # noqa: B008 - frozen, empty
) -> Intake:
    """Store the request. A replay of the same key returns the first record; an emergency message while
    the guardian's P0 about the same child is open joins that request instead of paging staff anew.

    Two round trips to Redis: one pipeline of reads, one script that claims the key and writes. Raises
    RateLimited over a limit (never for an emergency over a soft one) and IdempotencyMismatch."""
    started = time.perf_counter()
    r = runtime.redis
    wait = replicas.wanted(runtime.settings.intake_min_replicas, runtime.settings.intake_replica_timeout_ms)
    idem_key = idempotency_key(school.id, sub.guardian_id, sub.idempotency_key) if sub.idempotency_key else None
    classification = classification or triage(sub)
    p0 = classification.urgency is Urgency.P0
    found = _read(runtime, school, sub, idem_key, p0, limits)
    if found.hard_wait is not None:
        raise RateLimited(found.hard_wait)
    if found.seen is not None and idem_key and (replay := _replay(r, school.id, found.seen, sub)) is not None:
        _confirm(r, school.id, wait, replay.id)  # the first answer may have been a 503 for want of a replica
        return Intake(replay, Outcome.replayed)
    if found.soft_wait is not None and not p0:
        raise RateLimited(found.soft_wait)
    if p0 and found.open_emergency is not None:
        joined = _join_open_emergency(runtime, school, sub, found.open_emergency, student, classification, idem_key)
        if joined is not None:
            _confirm(r, school.id, wait, joined.id)
            return Intake(joined, Outcome.joined)

    now = clock.now_in(school.zone)
    routing = plan(classification, student, school, now)
    record = _record(school, version, student, sub, classification, routing, now)
    over_limit = found.soft_wait is not None
    replacing = found.seen
    for _ in range(3):
        writes = r.pipeline(transaction=False)
        counted = _queue_writes(writes, runtime, school, record, routing, now, found.parent_bound, over_limit)
        claim = Claim(idem_key, json.dumps({"request_id": record.id, "digest": sub.digest()}),
                      IDEMPOTENCY_TTL_SECONDS, replacing) if idem_key else None
        done = write(r, writes, claim, (keys.events(school.id), changes.message(record.id, record.status.value)),
                     tail=2 if counted else 0, wait=wait)
        if isinstance(done, Written):
            break
        # A concurrent retry with the same key won the claim: answer with the request it stored.
        if (replay := _replay(r, school.id, done.value, sub)) is not None:
            _confirm(r, school.id, wait, replay.id)
            return Intake(replay, Outcome.replayed)
        replacing = done.value  # its request is gone (erased): take the key over
    else:
        raise redis.RedisError("the idempotency key kept changing")

    if over_limit:
        log.warning("rate_limited_but_urgent", request_id=record.id, school_id=school.id)
    if counted:
        outbreak_reached(runtime, school, record, int(done.replies[-2]), bool(done.replies[-1]))
    elapsed = time.perf_counter() - started
    metrics.intake(record.urgency, record.category, elapsed)
    log.info("request_received", request_id=record.id, school_id=school.id, urgency=record.urgency,
             category=record.category, owner=record.owner, notified=len(routing.notify_now),
             ms=round(elapsed * 1000, 2))
    if record.estimated:
        log.warning("due_times_estimated", request_id=record.id, school_id=school.id,
                    reason="no official holidays known for a year the due times reach: weekdays and weekends only")
    if wait is not None and done.replicas is not None and done.replicas < wait.replicas:
        # Stored and announced on the master, which may yet be lost with it: the parent retries (same key).
        log.warning("intake_not_replicated", request_id=record.id, school_id=school.id, replicas=done.replicas,
                    wanted=wait.replicas)
        replicas.check(done.replicas, wait)
    return Intake(record, Outcome.created, over_limit)


def _record(
    school: School, version: int, student: Student, sub: Submission, classification: Classification,
    routing: RoutingPlan, now: dt.datetime,
) -> RequestRecord:
    at = iso(now)
    return RequestRecord(
        id=new_request_id(now.timestamp()),
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
        created_at=at,
        updated_at=at,
        escalation=[PlannedStepRecord(step=s.index, due_at=iso_due(s.due_at), notify=list(s.notify))
                    for s in routing.escalation],
        directory_version=version,
        estimated=routing.estimated,
        told=[n.staff_id for n in routing.notify_now] if classification.urgency is Urgency.P0 else [],
    )


def _queue_writes(
    pipe: redis.client.Pipeline, runtime: Runtime, school: School, record: RequestRecord, routing: RoutingPlan,
    now: dt.datetime, tell_parent: bool, over_limit: bool,
) -> bool:
    """Everything a new request writes, queued on `pipe`; returns whether its last two replies are the
    outbreak count (see sla.track_outbreak)."""
    urgency = Urgency(record.urgency)
    event = NOTICE_EVENT.get(urgency, Event.created)
    for notice in routing.notify_now:
        if notice.held_until is not None:
            # Teachers' evenings and mornings: what waits (P2/P3, and P1 with a roll call) goes out as one
            # digest per person at the next school day's roll call (routing.roll_call).
            hold_for_digest(pipe, record, notice.staff_id, notice.held_until, fyi=notice.why == "homeroom")
            continue
        why_event = Event.fyi if notice.why == "homeroom" else event
        queue_notice(pipe, runtime, record, notice.staff_id, notice.why, why_event)
    if tell_parent:
        queue_parent_notice(pipe, runtime, record, Event.received)
    write_request(pipe, record)
    for entry in first_timeline(record, [n.staff_id for n in routing.notify_now]):
        pipe.rpush(keys.timeline(school.id, record.id), json.dumps(entry, ensure_ascii=False))
    if over_limit:
        # Staff see why this guardian went past the limit; the parent's view does not list this entry.
        pipe.rpush(keys.timeline(school.id, record.id), timeline_entry("rate_limited_but_urgent", record.created_at))
    pipe.zadd(keys.guardian_requests(school.id, record.guardian_id), {record.id: now.timestamp()})
    pipe.zadd(keys.school_requests(school.id), {record.id: now.timestamp()})
    if routing.escalation:
        arm(pipe, school.id, escalate_timer(record.id, 1), routing.escalation[0].due_at.timestamp())
    if urgency is Urgency.P0:
        pipe.set(keys.open_emergency(school.id, record.guardian_id, record.student_id), record.id,
                 ex=EMERGENCY_POINTER_TTL_SECONDS)
    if runtime.settings.triage_llm_url and urgency is not Urgency.P0:
        # Asked by a worker after the 201; queued here so that a crash cannot lose the question.
        enqueue(pipe, runtime.queues[URGENT], SECOND_OPINION_JOB, (school.id, record.id), timeout=60, result_ttl=0,
                failure_ttl=86400)
    return track_outbreak(pipe, school, record)  # last: its replies end the list


# How long a guardian's emergency messages keep joining their last P0 (while it is open).
EMERGENCY_POINTER_TTL_SECONDS = 24 * 3600


def _confirm(r: redis.Redis, school_id: str, wait: replicas.ReplicaWait | None, request_id: str) -> None:
    """WAIT for a request stored earlier (a retry's answer); NotReplicated if the replicas do not confirm."""
    if wait is None:
        return
    try:
        replicas.confirm(r, school_id, wait)
    except replicas.NotReplicated as exc:
        log.warning("intake_not_replicated", request_id=request_id, school_id=school_id, replicas=exc.confirmed,
                    wanted=wait.replicas)
        raise


def _replay(r: redis.Redis, school_id: str, seen: bytes, sub: Submission) -> RequestRecord | None:
    """The request stored under a key already used: refused if the body differs; None if it is gone."""
    first = json.loads(seen)
    if first["digest"] != sub.digest():
        raise IdempotencyMismatch()
    return load(r, school_id, first["request_id"])


def _join_open_emergency(
    runtime: Runtime, school: School, sub: Submission, older_id: str, student: Student,
    classification: Classification, idem_key: str | None,
) -> RequestRecord | None:
    """Bound the harm of a burst without refusing an emergency: the message goes on the open P0's timeline
    (staff read it there), and only the first such message pages the owner and the P0's responders again."""
    r = runtime.redis
    now = clock.now_in(school.zone)
    routing = plan(classification, student, school, now)
    at = iso(now)

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
        done = transition(r, school.id, older_id, append)
    except Conflict:
        return None
    if done is None:
        return None
    record = done[0]
    metrics.emergency_joined()
    log.info("emergency_joined", request_id=record.id, school_id=school.id, updates=record.parent_updates)
    return record
