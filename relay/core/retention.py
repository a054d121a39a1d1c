"""Forgetting requests: a guardian's data on their request, and everything past the retention period.

`forget` deletes requests with all that hangs off them — the record, its timeline, its place in
the open queue and the guardian's index, its delivery records and its timers — in one
transaction. `purge` forgets the requests of a school older than `RELAY_RETENTION_DAYS`; the
worker's scheduler runs it once a day through the `purge|daily` timer of each school, and
operators can run it by hand (`relay purge --dry-run`). The audit log keeps one entry per run,
with a count.

A request id begins with its creation time in milliseconds (store.new_request_id), so a purge
reads ages from ids without loading records.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from relay.base import clock, keys
from relay.base.log import log
from relay.base.runtime import Runtime, get_runtime
from relay.base.store import RequestRecord, text
from relay.core import audit, deliveries
from relay.core.timers import PURGE, arm, disarm, request_of

PURGE_TIMER = PURGE.id("daily")
PURGE_EVERY_SECONDS = 86400
FIRST_PURGE_AFTER_SECONDS = 300  # a worker that just started lets the morning rush pass first


def created_at(request_id: str) -> float | None:
    """Seconds since the epoch, from the id; None for an id of another shape."""
    digits = request_id[1:-16] if request_id.startswith("r") and len(request_id) > 17 else ""
    try:
        return int(digits, 16) / 1000
    except ValueError:
        return None


def forget(connection: redis.Redis, school_id: str, records: list[RequestRecord]) -> int:
    """Delete these requests and everything that hangs off them; returns how many were deleted."""
    if not records:
        return 0
    ids = {r.id for r in records}
    # Delivery records and timers are keyed by event ids that begin with the request id.
    stored = deliveries.stored_for(connection, school_id, ids)
    timers = [t for t in (text(m) for m in connection.zrange(keys.timers(school_id), 0, -1))
              if request_of(t) in ids]
    with connection.pipeline(transaction=True) as pipe:
        for record in records:
            pipe.delete(keys.request(school_id, record.id), keys.timeline(school_id, record.id))
            pipe.zrem(keys.open_requests(school_id), record.id)
            pipe.zrem(keys.guardian_requests(school_id, record.guardian_id), record.id)
        deliveries.forget(pipe, stored)
        disarm(pipe, school_id, *timers)
        pipe.execute()
    return len(records)


def _load_many(connection: redis.Redis, school_id: str, request_ids: Iterable[str]) -> list[RequestRecord]:
    ids = list(request_ids)
    raws = connection.mget([keys.request(school_id, i) for i in ids]) if ids else []
    return [RequestRecord.model_validate_json(raw) for raw in raws if raw]


def expired_ids(connection: redis.Redis, school_id: str, days: int, now: float | None = None) -> list[str]:
    cutoff = (now if now is not None else clock.now()) - days * 86400
    prefix = keys.request(school_id, "")
    found = []
    for key in connection.scan_iter(match=keys.request(school_id, "*"), count=1000):
        request_id = text(key)[len(prefix):]
        created = created_at(request_id)
        if created is not None and created < cutoff:
            found.append(request_id)
    return sorted(found)


def purge(runtime: Runtime, school_id: str, dry_run: bool = False, now: float | None = None) -> int:
    """Forget the school's requests older than the retention period; returns how many (would be) purged."""
    r = runtime.redis
    ids = expired_ids(r, school_id, runtime.settings.retention_days, now)
    if dry_run or not ids:
        return len(ids)
    purged = 0
    for start in range(0, len(ids), 500):
        purged += forget(r, school_id, _load_many(r, school_id, ids[start:start + 500]))
    audit.record_count(r, school_id, "retention_purged", purged)
    return purged


def arm_daily(runtime: Runtime, school_ids: Iterable[str], first_in: float = FIRST_PURGE_AFTER_SECONDS) -> None:
    """Make sure each school has its daily purge timer (an existing one keeps its time)."""
    due_s = clock.now() + first_in
    with runtime.redis.pipeline(transaction=False) as pipe:
        for school_id in school_ids:
            arm(pipe, school_id, PURGE_TIMER, due_s, keep=True)
        pipe.execute()


def purge_on_timer(school_id: str, rest: str) -> str:
    """The `purge|daily` timer's job: purge, then arm tomorrow's run (and any new school's first)."""
    runtime = get_runtime()
    count = purge(runtime, school_id)
    log.info("retention_purged", school_id=school_id, count=count, days=runtime.settings.retention_days)
    schools = runtime.directories.school_ids()
    if school_id in schools:  # a school taken out of service keeps no timer
        arm(runtime.redis, school_id, PURGE_TIMER, clock.now() + PURGE_EVERY_SECONDS)
    else:
        disarm(runtime.redis, school_id, PURGE_TIMER)
    arm_daily(runtime, schools)
    return f"purged {count}"

