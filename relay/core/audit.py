"""The audit log: who did what to which request, one Redis stream per school.

Every staff action (ack, claim, reply, note, resolve, reassign) appends an entry in the same
transaction as the change itself, and so does opening a medical request. An entry holds
`{at, staff_id, action, request_id}` and never the message text. Deleting a guardian's data or
purging old requests leaves one entry with a count. No API writes here except the actions;
operators read it with `relay audit`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import redis
from redis.client import Pipeline

from relay.base import keys
from relay.base.store import text

# Approximate trimming (MAXLEN ~) is cheap; a large school writes far fewer entries than this in a year.
MAX_ENTRIES = 1_000_000

ACTIONS = ("view", "ack", "claim", "reply", "note", "on_site", "resolve", "reassign", "retriage",
           "guardian_data_deleted", "retention_purged")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record(connection: redis.Redis | Pipeline, school_id: str, staff_id: str, action: str,
           request_id: str) -> None:
    """Append one staff action (on a pipeline: in the same transaction as the action)."""
    fields: dict[Any, Any] = {"at": _now(), "staff_id": staff_id, "action": action, "request_id": request_id}
    connection.xadd(keys.audit(school_id), fields, maxlen=MAX_ENTRIES, approximate=True)


def record_count(connection: redis.Redis | Pipeline, school_id: str, action: str, count: int) -> None:
    """A deletion, as a count alone: what was deleted is gone, and so is whose it was."""
    fields: dict[Any, Any] = {"at": _now(), "staff_id": "", "action": action, "request_id": "", "count": str(count)}
    connection.xadd(keys.audit(school_id), fields, maxlen=MAX_ENTRIES, approximate=True)


_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_ms(since: str | None, now: float | None = None) -> int:
    """`--since`: an ISO date or time (UTC unless it says otherwise), or an age like `24h` or `7d`."""
    if not since:
        return 0
    moment = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
    relative = _RELATIVE.match(since.strip())
    if relative:
        return int((moment - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]) * 1000)
    parsed = dt.datetime.fromisoformat(since.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def entries(connection: redis.Redis, school_id: str, since: str | None = None,
            batch: int = 1000) -> Iterator[dict[str, Any]]:
    """The school's entries from `since` on, oldest first."""
    start = f"{since_ms(since)}-0"
    while True:
        chunk: list[Any] = connection.xrange(keys.audit(school_id), min=start, max="+", count=batch) or []
        for _, fields in chunk:
            entry: dict[str, Any] = {text(k): text(v) for k, v in (fields or {}).items()}
            if "count" in entry:
                entry["count"] = int(entry["count"])
            yield {"school_id": school_id, **entry}
        if len(chunk) < batch:
            return
        start = "(" + text(chunk[-1][0])


def entries_before(connection: redis.Redis, school_id: str, before_ms: int,
                   batch: int = 1000) -> Iterator[dict[str, Any]]:
    """The school's entries written before `before_ms` (epoch milliseconds), oldest first: what a trim removes."""
    start = "-"
    end = f"({before_ms}-0"
    while True:
        chunk: list[Any] = connection.xrange(keys.audit(school_id), min=start, max=end, count=batch) or []
        for entry_id, fields in chunk:
            yield {"id": text(entry_id), **{text(k): text(v) for k, v in (fields or {}).items()}}
        if len(chunk) < batch:
            return
        start = "(" + text(chunk[-1][0])


def trim_before(connection: redis.Redis, school_id: str, before_ms: int) -> int:
    """Delete the entries written before `before_ms`; returns how many. XTRIM MINID (Redis 6.2 has it), exact."""
    return int(connection.xtrim(keys.audit(school_id), minid=f"{before_ms}-0", approximate=False))
