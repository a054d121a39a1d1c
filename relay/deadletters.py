"""Dead letters: notifications that exhausted every contact and retry, kept per school for an operator.

`relay:{school}:deadletters` is a list of delivery records (JSON, newest first), pushed by
`relay.jobs._finish` when a delivery fails for good. An operator lists and shows them, fixes
the cause (a wrong phone number, a lapsed vendor credential), then either redrives one or
drops it. A redrive sends the *same* event id again, from the person's first contact, so a
receiver that did get it after all drops the duplicate. Each change is one transaction that
also writes the request's timeline; the delivery job is enqueued in that same EXEC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from relay import clock, keys
from relay.notices import enqueue_delivery
from relay.runtime import Runtime
from relay.store import RequestRecord, add_timeline, load, load_timeline, now_in, text
from relay.timers import arm, deliver_timer

DELIVERY_TTL_SECONDS = 30 * 86400  # as relay.jobs keeps delivery records

# Run inside the MULTI that removes the letter: (pipeline, the delivery record, its request if still stored).
Then = Callable[[Pipeline, dict[str, Any], RequestRecord | None], None]


@dataclass(frozen=True)
class DeadLetter:
    school_id: str
    delivery: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.delivery["event_id"])

    def summary(self) -> dict[str, Any]:
        """What `list` prints: ids and states, never message text."""
        d = self.delivery
        return {
            "school_id": self.school_id,
            "event_id": d["event_id"],
            "request_id": d.get("request_id"),
            "staff_id": d.get("staff_id"),
            **({"guardian_id": d["guardian_id"]} if "guardian_id" in d else {}),  # a parent notice
            "event": d.get("event"),
            "urgency": d.get("urgency"),
            "attempt": d.get("attempt"),
            "contact_index": d.get("contact_index"),
            "redrives": d.get("redrives", 0),
        }


def _parse(raw: bytes | str) -> dict[str, Any] | None:
    try:
        delivery = json.loads(raw)
    except ValueError:
        return None
    return delivery if isinstance(delivery, dict) and "event_id" in delivery else None


def schools(connection: redis.Redis, school_id: str | None = None) -> list[str]:
    """The one school asked for, or every published school."""
    if school_id:
        return [school_id]
    return sorted(text(s) for s in connection.smembers(keys.SCHOOLS))


def letters(connection: redis.Redis, school_id: str) -> list[DeadLetter]:
    """A school's dead letters, newest first."""
    found = []
    for raw in connection.lrange(keys.dead_letters(school_id), 0, -1):
        delivery = _parse(raw)
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
    request_id = letter.delivery.get("request_id")
    history = load_timeline(connection, school_id, request_id) if request_id else []
    return {
        "school_id": school_id,
        "delivery": letter.delivery,
        "history": [entry for entry in history if entry.get("event_id") == event_id],
    }


def _take(connection: redis.Redis, school_id: str, event_id: str, then: Then) -> dict[str, Any] | None:
    """Remove every copy of `event_id` from the list and run `then(pipe, delivery)` in the same EXEC.

    WATCH on the list and the delivery record: if a worker pushes a letter or rewrites the
    record meanwhile, the whole step is read again.
    """
    list_key = keys.dead_letters(school_id)
    delivery_key = keys.delivery(school_id, event_id)
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(list_key, delivery_key)
                raws = [raw for raw in pipe.lrange(list_key, 0, -1)
                        if (_parse(raw) or {}).get("event_id") == event_id]
                if not raws:
                    pipe.unwatch()
                    return None
                delivery = _parse(raws[0])
                assert delivery is not None
                record = load(pipe, school_id, str(delivery.get("request_id")))
                pipe.multi()
                for raw in {text(r) for r in raws}:
                    pipe.lrem(list_key, 0, raw)
                then(pipe, delivery, record)
                pipe.execute()
                return delivery
            except redis.WatchError:
                continue


def redrive(runtime: Runtime, school_id: str, event_id: str) -> dict[str, Any] | None:
    """Send a dead letter again: state pending, attempt 0, first contact, same event id. None: no such letter."""

    def requeue(pipe: Pipeline, delivery: dict[str, Any], record: RequestRecord | None) -> None:
        delivery.update(state="pending", attempt=0, contact_index=0, redrives=delivery.get("redrives", 0) + 1)
        pipe.set(keys.delivery(school_id, event_id), json.dumps(delivery), ex=DELIVERY_TTL_SECONDS)
        # The watchdog, as at intake: if the worker that takes it dies, the timer hands it to another.
        arm(pipe, school_id, deliver_timer(event_id), clock.now() + runtime.settings.delivery_lease_seconds)
        if record is not None:
            add_timeline(pipe, record, "delivery_redriven", now_in(record), event_id=event_id,
                         to=delivery.get("staff_id") or delivery.get("guardian_id"), redrives=delivery["redrives"])
        enqueue_delivery(pipe, runtime.queue_for(str(delivery.get("urgency", "P2"))), school_id, event_id)

    return _take(runtime.redis, school_id, event_id, requeue)


def drop(connection: redis.Redis, school_id: str, event_id: str) -> dict[str, Any] | None:
    """Forget a dead letter (its delivery record stays `failed`). None: no such letter."""

    def note(pipe: Pipeline, delivery: dict[str, Any], record: RequestRecord | None) -> None:
        if record is not None:
            add_timeline(pipe, record, "dead_letter_dropped", now_in(record), event_id=event_id,
                         to=delivery.get("staff_id") or delivery.get("guardian_id"))

    return _take(connection, school_id, event_id, note)
