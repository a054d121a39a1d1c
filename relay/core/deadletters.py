"""Dead letters: notifications that exhausted every contact and retry, kept per school for an operator.

`relay:{school}:deadletters` is a list of delivery records (JSON, newest first), pushed by
`relay.core.deliveries.finish` when a delivery fails for good. An operator lists and shows them, fixes
the cause (a wrong phone number, a lapsed vendor credential), then either redrives one or
drops it. A redrive sends the *same* event id again, from the person's first contact, so a
receiver that did get it after all drops the duplicate. Each change is one transaction that
also writes the request's timeline; the delivery job is enqueued in that same EXEC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from relay.base import keys
from relay.base.runtime import Runtime
from relay.base.store import RequestRecord, add_timeline, load, load_timeline, now_in, text
from relay.core import deliveries
from relay.core.deliveries import Delivery

# Run inside the MULTI that removes the letter: (pipeline, the delivery record, its request if still stored).
Then = Callable[[Pipeline, Delivery, RequestRecord | None], None]


@dataclass(frozen=True)
class DeadLetter:
    school_id: str
    delivery: Delivery

    @property
    def event_id(self) -> str:
        return self.delivery.event_id

    def summary(self) -> dict[str, Any]:
        """What `list` prints: ids and states, never message text."""
        d = self.delivery
        return {
            "school_id": self.school_id,
            "event_id": d.event_id,
            "request_id": d.request_id,
            "staff_id": d.staff_id,
            **({"guardian_id": d.guardian_id} if d.for_guardian else {}),  # a parent notice
            "event": d.event.value,
            "urgency": d.urgency.value,
            "attempt": d.attempt,
            "contact_index": d.contact_index,
            "redrives": d.redrives or 0,
        }


def schools(connection: redis.Redis, school_id: str | None = None) -> list[str]:
    """The one school asked for, or every published school."""
    if school_id:
        return [school_id]
    return sorted(text(s) for s in connection.smembers(keys.SCHOOLS))


def letters(connection: redis.Redis, school_id: str) -> list[DeadLetter]:
    """A school's dead letters, newest first."""
    found = []
    for raw in connection.lrange(keys.dead_letters(school_id), 0, -1):
        delivery = deliveries.parse(raw)
        if delivery is not None:
            found.append(DeadLetter(school_id, delivery))
    return found


def find(connection: redis.Redis, school_id: str, event_id: str) -> DeadLetter | None:
    return next((letter for letter in letters(connection, school_id) if letter.event_id == event_id), None)


def show(connection: redis.Redis, school_id: str, event_id: str) -> dict[str, Any] | None:
    """The dead letter and its story: the request's timeline entries about this event."""
    letter = find(connection, school_id, event_id)
    if letter is None:
        return None
    history = load_timeline(connection, school_id, letter.delivery.request_id)
    return {
        "school_id": school_id,
        "delivery": letter.delivery.document(),
        "history": [entry for entry in history if entry.get("event_id") == event_id],
    }


def _take(connection: redis.Redis, school_id: str, event_id: str, then: Then) -> dict[str, Any] | None:
    """Remove every copy of `event_id` from the list and run `then(pipe, delivery)` in the same EXEC.

    WATCH on the list and the delivery record: if a worker pushes a letter or rewrites the
    record meanwhile, the whole step is read again. Returns the delivery as it is stored after the step.
    """
    list_key = keys.dead_letters(school_id)
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(list_key)
                deliveries.watch(pipe, school_id, event_id)
                found = [(raw, d) for raw in pipe.lrange(list_key, 0, -1)
                         if (d := deliveries.parse(raw)) is not None and d.event_id == event_id]
                if not found:
                    pipe.unwatch()
                    return None
                delivery = found[0][1]
                record = load(pipe, school_id, delivery.request_id)
                pipe.multi()
                for raw in {text(raw) for raw, _ in found}:
                    pipe.lrem(list_key, 0, raw)
                then(pipe, delivery, record)
                pipe.execute()
                return delivery.document()
            except redis.WatchError:
                continue


def redrive(runtime: Runtime, school_id: str, event_id: str) -> dict[str, Any] | None:
    """Send a dead letter again: state pending, attempt 0, first contact, same event id. None: no such letter."""

    def requeue(pipe: Pipeline, delivery: Delivery, record: RequestRecord | None) -> None:
        delivery.redriven()
        # Record, watchdog and job, as at intake: if the worker that takes it dies, the timer hands it to another.
        deliveries.requeue(pipe, runtime, delivery)
        if record is not None:
            add_timeline(pipe, record, "delivery_redriven", now_in(record), event_id=event_id,
                         to=delivery.recipient_id, redrives=delivery.redrives)

    return _take(runtime.redis, school_id, event_id, requeue)


def drop(connection: redis.Redis, school_id: str, event_id: str) -> dict[str, Any] | None:
    """Forget a dead letter (its delivery record stays `failed`). None: no such letter."""

    def note(pipe: Pipeline, delivery: Delivery, record: RequestRecord | None) -> None:
        if record is not None:
            add_timeline(pipe, record, "dead_letter_dropped", now_in(record), event_id=event_id,
                         to=delivery.recipient_id)

    return _take(connection, school_id, event_id, note)
