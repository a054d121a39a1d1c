"""A notification's delivery: its typed record, and the one module that queues, saves, finishes and dead-letters it.

One delivery is one event to one person, kept at `relay:{school}:delivery:{event_id}` for
DELIVERY_TTL_SECONDS. Queueing writes three things on the caller's pipeline, in its MULTI:
the record (SET NX, so a duplicate firing never makes a second one), the watchdog timer
(if no worker finishes it within the lease, the timer hands it to another), and the RQ
job. A delivery ends delivered, failed (and then dead-lettered for an operator) or
cancelled; an operator's redrive takes a failed one back to pending under the same id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal, TypedDict, Unpack

import redis
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from redis.client import Pipeline
from rq import Queue

from adapters.base import Reason
from relay.base import clock, keys, metrics
from relay.base.runtime import Runtime
from relay.base.store import RequestRecord, add_timeline, now_in, text
from relay.core.enqueue import enqueue as enqueue_job
from relay.core.notice_events import EVENTS, Event
from relay.core.timers import arm, deliver_timer, disarm
from routing.labels import Urgency

DELIVERY_TTL_SECONDS = 30 * 86400  # a delivery record outlives its request's working days, for the timeline's story
# How long a queued delivery job is trusted to be waiting its turn. Past it (a job lost between a
# worker's pop and its start), the watchdog queues the delivery again.
QUEUED_TTL_SECONDS = 120
DELIVER_JOB = "relay.core.jobs.deliver"
GUARDIAN: Final = "guardian"  # a delivery's `recipient`; without one it is a staff member

Connection = redis.Redis | Pipeline


class DeliveryState(StrEnum):
    pending = "pending"  # queued, being sent, or waiting for a retry
    delivered = "delivered"
    failed = "failed"  # every contact and retry exhausted: a dead letter
    cancelled = "cancelled"  # no longer worth sending (acknowledged, request gone, guardian not bound)

    @property
    def final(self) -> bool:
        return self is not DeliveryState.pending


# Where a state may go. A failed delivery goes back to pending only by an operator's redrive.
_NEXT: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.pending: frozenset({DeliveryState.delivered, DeliveryState.failed, DeliveryState.cancelled}),
    DeliveryState.failed: frozenset({DeliveryState.pending}),
    DeliveryState.delivered: frozenset(),
    DeliveryState.cancelled: frozenset(),
}
_TIMELINE_KIND = {
    DeliveryState.delivered: "delivered",
    DeliveryState.failed: "delivery_failed",
    DeliveryState.cancelled: "delivery_cancelled",
}


class InvalidTransition(ValueError):
    pass


class Delivery(BaseModel):
    """The stored record. Field order and names are the stored JSON's: records written before this model load."""

    model_config = ConfigDict(extra="ignore")

    event_id: str
    school_id: str
    request_id: str
    staff_id: str | None = None  # a staff member's notification
    recipient: Literal["guardian"] | None = None  # or the request's guardian's
    guardian_id: str | None = None
    why: str  # why this person is told: owner, nurse, homeroom, escalation, digest, guardian...
    event: Event
    urgency: Urgency
    contact_index: int = 0  # which of the person's contacts is being tried
    attempt: int = 0  # sends tried on that contact
    state: DeliveryState = DeliveryState.pending
    created_at: float  # epoch seconds
    request_ids: list[str] | None = None  # a digest: the requests it lists
    by_class: dict[str, int] | None = None  # a digest: how many of them each class has, in the digest's order
    count: int | None = None  # an outbreak: reports in the window
    window_s: int | None = None
    symptom: str | None = None
    owner_id: str | None = None  # a parent's status message: who has the request
    redrives: int | None = None  # times an operator sent it again

    @model_validator(mode="after")
    def _has_a_recipient(self) -> Delivery:
        if self.recipient == GUARDIAN and not self.guardian_id:
            raise ValueError("a guardian's delivery needs guardian_id")
        if self.recipient is None and not self.staff_id:
            raise ValueError("a staff delivery needs staff_id")
        return self

    @property
    def for_guardian(self) -> bool:
        return self.recipient == GUARDIAN

    @property
    def recipient_id(self) -> str:
        """Whom it is for: the staff id, or the guardian id of a parent notice."""
        return str(self.guardian_id if self.for_guardian else self.staff_id)

    @property
    def stopped_by_ack(self) -> bool:
        return EVENTS[self.event].stopped_by_ack

    def document(self) -> dict[str, Any]:
        """The stored JSON's shape: fields that do not apply are absent, as they always were."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.document())

    def move_to(self, state: DeliveryState) -> None:
        if state not in _NEXT[self.state]:
            raise InvalidTransition(f"delivery {self.event_id}: {self.state} → {state}")
        self.state = state

    def next_contact(self) -> None:
        """This contact will not carry it: the person's next contact, from the first attempt."""
        self.contact_index += 1
        self.attempt = 0

    def redriven(self) -> None:
        """An operator sends a failed delivery again: same event id, first contact, first attempt."""
        self.move_to(DeliveryState.pending)
        self.contact_index = 0
        self.attempt = 0
        self.redrives = (self.redrives or 0) + 1

    def fallback(self) -> Delivery:
        """An unacknowledged P0 page's second delivery, to the person's next contact (a new event id)."""
        return self.model_copy(update={
            "event_id": f"{self.event_id}.next", "contact_index": self.contact_index + 1, "attempt": 0,
            "state": DeliveryState.pending, "created_at": clock.now(),
        })


def event_id(request_id: str, event: str, step: int, recipient: str) -> str:
    """Derived, never random: the same notification can never be created twice, and receivers drop
    duplicates by it. Begins with the request id (retention finds a request's deliveries by it)."""
    return f"{request_id}.{event.removeprefix('request.')}.{step}.{recipient}"


def request_of(event_id: str) -> str:
    return event_id.split(".", 1)[0]


class Extras(TypedDict, total=False):
    """What some events carry beyond the common fields (see Delivery)."""

    request_ids: list[str]
    by_class: dict[str, int]
    count: int
    window_s: int
    symptom: str
    owner_id: str


def new(
    record: RequestRecord, eid: str, event: Event, why: str, *, staff_id: str | None = None,
    guardian_id: str | None = None, **extra: Unpack[Extras],
) -> Delivery:
    return Delivery(
        event_id=eid, school_id=record.school_id, request_id=record.id, staff_id=staff_id,
        recipient=GUARDIAN if guardian_id else None, guardian_id=guardian_id, why=why, event=event,
        urgency=Urgency(record.urgency), created_at=clock.now(), **extra,
    )


# --- reading --------------------------------------------------------------------------------


def parse(raw: bytes | str | None) -> Delivery | None:
    """A stored record, or None for nothing or something that is not a delivery."""
    if not raw:
        return None
    try:
        return Delivery.model_validate_json(raw)
    except ValidationError:
        return None


def load(connection: Connection, school_id: str, eid: str) -> Delivery | None:
    return parse(connection.get(keys.delivery(school_id, eid)))


def exists(connection: Connection, school_id: str, eid: str) -> bool:
    return bool(connection.exists(keys.delivery(school_id, eid)))


def watch(pipe: Pipeline, school_id: str, eid: str) -> None:
    """WATCH a delivery record, for a caller's WATCH / MULTI / EXEC step."""
    pipe.watch(keys.delivery(school_id, eid))


def urgency_of(connection: redis.Redis, school_id: str, eid: str) -> Urgency:
    found = load(connection, school_id, eid)
    return found.urgency if found else Urgency.P2


# --- writing --------------------------------------------------------------------------------


def save(pipe: Connection, delivery: Delivery) -> None:
    pipe.set(keys.delivery(delivery.school_id, delivery.event_id), delivery.to_json(), ex=DELIVERY_TTL_SECONDS)


def queue(pipe: Pipeline, runtime: Runtime, delivery: Delivery) -> str:
    """A new delivery, on a pipeline already in MULTI: its record (never a second one), its watchdog, its job."""
    pipe.set(keys.delivery(delivery.school_id, delivery.event_id), delivery.to_json(), nx=True,
             ex=DELIVERY_TTL_SECONDS)
    _hand_to_workers(pipe, runtime, delivery)
    return delivery.event_id


def requeue(pipe: Pipeline, runtime: Runtime, delivery: Delivery) -> None:
    """A delivery changed (next contact, redriven) and sent again at once, on a pipeline in MULTI."""
    save(pipe, delivery)
    _hand_to_workers(pipe, runtime, delivery)


def retry_at(pipe: Pipeline, delivery: Delivery, due_s: float) -> None:
    """Save the attempt and try again at `due_s`: the delivery timer itself brings it back."""
    save(pipe, delivery)
    arm(pipe, delivery.school_id, deliver_timer(delivery.event_id), due_s)


def _hand_to_workers(pipe: Pipeline, runtime: Runtime, delivery: Delivery) -> None:
    # The watchdog: if no worker finishes this delivery within the lease, the timer hands it to another.
    arm(pipe, delivery.school_id, deliver_timer(delivery.event_id),
        clock.now() + runtime.settings.delivery_lease_seconds)
    enqueue(pipe, runtime.queue_for(delivery.urgency.value), delivery.school_id, delivery.event_id)


def enqueue(pipe: Pipeline | None, queue: Queue, school_id: str, eid: str) -> None:
    """The delivery job, marked as waiting in its queue (the watchdog does not queue it twice meanwhile)."""
    writes = pipe if pipe is not None else queue.connection.pipeline()
    # RQ's job, without an RQ Job object per recipient (relay/core/enqueue.py).
    job_id = enqueue_job(writes, queue, DELIVER_JOB, (school_id, eid), timeout=60, result_ttl=0, failure_ttl=86400)
    writes.set(keys.delivery_queued(school_id, eid), job_id, ex=QUEUED_TTL_SECONDS)  # which job waits
    if pipe is None:
        writes.execute()


# A queue this long is a backlog: whether the marked job is still in it is not worth a scan.
LOST_JOB_SCAN = 1000


def watchdog_fired(runtime: Runtime, school_id: str, eid: str) -> str:
    """A delivery's timer is due: queue its job again, unless one still waits in the queue.

    Under a backlog, queueing again would feed the backlog (each watchdog firing adding a job). A dead
    worker's delivery has no marker (a job clears it as it starts), so it is queued at once. A marker
    whose job is no longer in a short queue was popped and never started: a worker died between the two,
    or a Redis failover kept the pop but lost the start. That job is queued again too, rather than wait
    out the marker (a duplicate is harmless: the delivery's lock and state let one send)."""
    r = runtime.redis
    queue = runtime.queue_for(urgency_of(r, school_id, eid).value)
    marker = keys.delivery_queued(school_id, eid)
    if not r.set(marker, 1, nx=True, ex=QUEUED_TTL_SECONDS) and not _popped_never_started(r, queue, marker):
        return "waiting"
    enqueue(None, queue, school_id, eid)
    return "queued"


def _popped_never_started(r: redis.Redis, queue: Queue, marker: str) -> bool:
    with r.pipeline(transaction=False) as pipe:
        pipe.get(marker)
        pipe.llen(queue.key)
        job_id, waiting = pipe.execute()
    if job_id is None or waiting > LOST_JOB_SCAN:
        return False
    return r.lpos(queue.key, job_id) is None


@dataclass(frozen=True)
class Claim:
    locked: bool  # False: another worker is sending it
    delivery: Delivery | None
    raw_request: bytes | None  # the request, read in the same round trip


def claim(connection: redis.Redis, school_id: str, eid: str, lease_s: float) -> Claim:
    """One round trip before sending. The lock keeps a delivery to one sender at a time (under a backlog
    the watchdog may queue a second job for a delivery that only waits its turn); it expires with the
    lease should the worker die, and the re-armed watchdog then hands it to another worker."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(keys.delivery_lock(school_id, eid), os.getpid(), nx=True, px=int(lease_s * 1000))
        pipe.get(keys.delivery(school_id, eid))
        pipe.get(keys.request(school_id, request_of(eid)))
        arm(pipe, school_id, deliver_timer(eid), clock.now() + lease_s)
        pipe.delete(keys.delivery_queued(school_id, eid))  # out of the queue now
        locked, raw, raw_request, _, _ = pipe.execute()
    return Claim(bool(locked), parse(raw), raw_request)


def release(connection: redis.Redis, school_id: str, eid: str) -> None:
    connection.delete(keys.delivery_lock(school_id, eid))


def finish(
    connection: redis.Redis,
    delivery: Delivery,
    record: RequestRecord | None,
    state: DeliveryState,
    reason: str | None,
    then: Callable[[Pipeline], None] | None = None,
    **detail: Any,
) -> DeliveryState:
    """The end of a delivery, in one transaction: its state, its timer gone, the timeline entry, and a
    failed one dead-lettered. `then` adds the caller's own writes to the same EXEC."""
    delivery.move_to(state)
    with connection.pipeline(transaction=True) as pipe:
        if then is not None:
            then(pipe)
        save(pipe, delivery)
        disarm(pipe, delivery.school_id, deliver_timer(delivery.event_id))
        if record is not None:
            add_timeline(pipe, record, _TIMELINE_KIND[state], now_in(record), event_id=delivery.event_id,
                         to=delivery.recipient_id, attempt=delivery.attempt, reason=reason, **detail)
        # A parent who did not subscribe (43101) or unfollowed is a fact for the timeline, not an operator's task.
        quiet = delivery.for_guardian and reason == Reason.recipient.value
        if state is DeliveryState.failed and not quiet:
            dead_letter(pipe, delivery)
        pipe.execute()
    return state


def dead_letter(pipe: Pipeline, delivery: Delivery) -> None:
    """Keep a failed delivery for an operator (relay/core/deadletters.py lists, redrives and drops them)."""
    pipe.lpush(keys.dead_letters(delivery.school_id), delivery.to_json())
    metrics.dead_letter(delivery.urgency.value)


# --- retention ------------------------------------------------------------------------------


def stored_for(connection: redis.Redis, school_id: str, request_ids: Iterable[str]) -> list[str]:
    """The keys of these requests' deliveries (records, queue marks, locks), for `forget`."""
    ids = set(request_ids)
    prefix = keys.delivery(school_id, "")
    return [text(k) for k in connection.scan_iter(match=prefix + "*", count=1000)
            if request_of(text(k)[len(prefix):]) in ids]


_MARKS = (":queued", ":lock", ":ack-link")  # keys beside a delivery record (keys.delivery_queued, ...)


def records_of(connection: redis.Redis, school_id: str, request_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """These requests' delivery records (still kept: they expire after DELIVERY_TTL_SECONDS), by request id."""
    ids = set(request_ids)
    prefix = keys.delivery(school_id, "")
    found = [key for key in (text(k) for k in connection.scan_iter(match=prefix + "*", count=1000))
             if not key.endswith(_MARKS) and request_of(key[len(prefix):]) in ids]
    kept: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(found), 500):
        batch = found[start:start + 500]
        for key, raw in zip(batch, connection.mget(batch), strict=True):
            if raw is not None:
                kept.setdefault(request_of(key[len(prefix):]), []).append(json.loads(raw))
    return kept


def forget(pipe: Pipeline, found: Iterable[str]) -> None:
    for key in found:
        pipe.delete(key)
