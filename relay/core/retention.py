"""Forgetting requests: a guardian's data on their request, and everything past the retention period.

`forget` deletes requests with all that hangs off them — the record, its timeline, its place in
the open queue, the school's list and the guardian's index, its delivery records and its timers —
in one transaction. `purge` forgets the school's closed requests whose closing is older than
`RELAY_RETENTION_DAYS`, and trims audit entries older than `RELAY_AUDIT_RETENTION_DAYS`; open requests
never expire, however old. Before anything is deleted it is written to a gzipped JSON Lines file
under `RELAY_RETENTION_EXPORT_DIR/<school>/` (fsynced, then renamed): a purge that cannot write its
export deletes nothing. The worker's scheduler runs it once a day through the `purge|daily` timer of
each school, and operators can run it by hand (`relay purge --dry-run`). The audit log keeps one
entry per run, with a count. Defaults and the laws behind them: README-ops.md, "Retention".

A request id begins with its creation time in milliseconds (store.new_request_id), and a request
closes after it was created, so a purge reads ids first and loads only those created before the cutoff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from relay.base import clock, keys
from relay.base.log import log
from relay.base.runtime import Runtime, get_runtime
from relay.base.store import RequestRecord, load_timeline, text
from relay.core import audit, deliveries, export
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
            pipe.zrem(keys.school_requests(school_id), record.id)
            pipe.zrem(keys.guardian_requests(school_id, record.guardian_id), record.id)
        deliveries.forget(pipe, stored)
        disarm(pipe, school_id, *timers)
        pipe.execute()
    return len(records)


def _load_many(connection: redis.Redis, school_id: str, request_ids: Iterable[str]) -> list[RequestRecord]:
    ids = list(request_ids)
    raws = connection.mget([keys.request(school_id, i) for i in ids]) if ids else []
    return [RequestRecord.model_validate_json(raw) for raw in raws if raw]


def _older_ids(connection: redis.Redis, school_id: str, cutoff: float) -> list[str]:
    prefix = keys.request(school_id, "")
    found = []
    for key in connection.scan_iter(match=keys.request(school_id, "*"), count=1000):
        request_id = text(key)[len(prefix):]
        created = created_at(request_id)
        if created is not None and created < cutoff:
            found.append(request_id)
    return sorted(found)


def closed_at(record: RequestRecord) -> float:
    """When the request closed (its last change for a request closed before resolved_at was kept)."""
    return dt.datetime.fromisoformat(record.resolved_at or record.updated_at).timestamp()


def expired(connection: redis.Redis, school_id: str, days: int, now: float | None = None) -> list[RequestRecord]:
    """The school's closed requests that closed more than `days` ago; open ones never expire."""
    cutoff = (now if now is not None else clock.now()) - days * 86400
    ids = _older_ids(connection, school_id, cutoff)
    found = []
    for start in range(0, len(ids), 500):
        found += [r for r in _load_many(connection, school_id, ids[start:start + 500])
                  if not r.is_open and closed_at(r) < cutoff]
    return found


def expired_ids(connection: redis.Redis, school_id: str, days: int, now: float | None = None) -> list[str]:
    return [r.id for r in expired(connection, school_id, days, now)]


@dataclass(frozen=True)
class Purged:
    requests: int
    audit_entries: int
    export: Path | None  # the file written before deleting (None: nothing to delete)


def purge(runtime: Runtime, school_id: str, dry_run: bool = False, now: float | None = None) -> Purged:
    """Export, then forget, the school's requests and audit entries past their retention periods."""
    r = runtime.redis
    settings = runtime.settings
    moment = now if now is not None else clock.now()
    records = expired(r, school_id, settings.retention_days, moment)
    audit_before = int((moment - settings.audit_retention_days * 86400) * 1000)
    old_entries = list(audit.entries_before(r, school_id, audit_before))
    if dry_run or not (records or old_entries):
        return Purged(len(records), len(old_entries), None)
    # The export first, whole and on disk: a purge whose export failed has deleted nothing.
    sent = deliveries.records_of(r, school_id, [rec.id for rec in records]) if records else {}
    lines = [{"kind": "request", "request": rec.model_dump(mode="json"),
              "timeline": load_timeline(r, school_id, rec.id), "deliveries": sent.get(rec.id, [])}
             for rec in records]
    lines += [{"kind": "audit", "entry": entry} for entry in old_entries]
    written = export.write(Path(settings.retention_export_dir), school_id, moment, lines)
    purged = 0
    for start in range(0, len(records), 500):
        purged += forget(r, school_id, records[start:start + 500])
    trimmed = audit.trim_before(r, school_id, audit_before) if old_entries else 0
    audit.record_count(r, school_id, "retention_purged", purged)
    return Purged(purged, trimmed, written)


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
    try:
        done: Purged | None = purge(runtime, school_id)
    except OSError as exc:  # the export could not be written: nothing was deleted; tomorrow's run tries again
        log.error("retention_export_failed", school_id=school_id, error=type(exc).__name__,
                  directory=runtime.settings.retention_export_dir)
        done = None
    if done is not None:
        log.info("retention_purged", school_id=school_id, count=done.requests, audit_entries=done.audit_entries,
                 days=runtime.settings.retention_days, export=str(done.export) if done.export else None)
    schools = runtime.directories.school_ids()
    if school_id in schools:  # a school taken out of service keeps no timer
        arm(runtime.redis, school_id, PURGE_TIMER, clock.now() + PURGE_EVERY_SECONDS)
    else:
        disarm(runtime.redis, school_id, PURGE_TIMER)
    arm_daily(runtime, schools)
    return f"purged {done.requests}" if done is not None else "export failed: nothing purged"

