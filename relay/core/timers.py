"""Timers in Redis: one sorted set per school, timer id by due time (ms), claimed in batches by any worker.

A timer id says what to do: `<kind>|<parts>`, e.g. `deliver|<event_id>`, `escalate|<request_id>|<step>`.
Every kind is one line of the table below (its handler and where it runs), every timer is
armed through `arm` and removed through `disarm`: nothing else writes the set.

Claiming does not remove a timer: one Lua call takes every due timer (up to CLAIM_BATCH) and
pushes each a lease into the future, to the same mark, so a timer whose handler never ran (a worker
killed mid-batch) fires again by itself. The claimed timers are run as one batch (`fire_batch`) per
queue of the table, by a job, or by the scheduler itself for IN_SCHEDULER kinds. A batch runs each
timer's handler only while the timer still holds that mark: a timer re-armed, disarmed or claimed
again since is not this batch's any more, so a re-armed timer is never fired early and a
re-claimed one not twice. Each handler removes or re-arms its timer in
the same transaction as its own writes, after checking the request's current state, so a
duplicate firing does nothing. A timer never fires before its due time: it is claimed only once
its score is <= now.
"""

from __future__ import annotations

import functools
import importlib
import math
import threading
from collections.abc import Callable, Mapping
from typing import NamedTuple

import redis
from redis.client import Pipeline
from rq import Queue

from relay.base import clock, keys
from relay.base.log import log
from relay.base.runtime import ROUTINE, get_runtime

# KEYS[1] = timers zset; ARGV = now_ms, limit, lease_ms. Returns [id, due, id, due, ...], every one
# of them now at the score now_ms + lease_ms (the claim's mark).
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local lease_until = tonumber(ARGV[1]) + tonumber(ARGV[3])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], lease_until, due[i])
end
return due
"""

CLAIM_LEASE_MS = 15_000  # the default of RELAY_TIMER_LEASE_SECONDS
CLAIM_BATCH = 200  # at most this many timers per claim, so one batch job stays short

OVERDUE_SECONDS = 2.0  # a timer claimed later than this past its due time is counted as overdue

# Instead of a queue: the scheduler runs the claim's batch itself, at once. For short handlers that only
# write to Redis and queue jobs (an emergency's next steps): no hop through RQ (~3-4 ms a job, measured),
# and no wait behind a worker's current send.
IN_SCHEDULER = "scheduler"


class TimerKind(NamedTuple):
    name: str
    job: str  # "module.function", called as function(school_id, rest): rest is the id after "<name>|"
    queue: str  # IN_SCHEDULER, or the queue its batch job goes to (EMERGENCY ahead of ROUTINE)
    of_request: bool = False  # the id's first part begins with a request id: forgetting the request disarms it

    def id(self, *parts: object) -> str:
        return "|".join([self.name, *map(str, parts)])


KINDS: dict[str, TimerKind] = {}


def kind(name: str, job: str, queue: str, of_request: bool = False) -> TimerKind:
    """Add a kind of timer to the table (a kind added twice keeps the last)."""
    KINDS[name] = TimerKind(name, job, queue, of_request)
    return KINDS[name]


# The table. Escalations, reminders and fallbacks are an emergency's next step: the scheduler takes them
# as it claims them, ahead of any queue. The delivery watchdog re-queues a delivery in its own urgency's
# queue, unless its job still waits in one. The digest and the daily purge are long and routine: a job.
DELIVER = kind("deliver", "relay.core.jobs.watchdog", IN_SCHEDULER, of_request=True)  # deliver|<event_id>
ESCALATE = kind("escalate", "relay.core.jobs.escalate_on_timer", IN_SCHEDULER, of_request=True)  # escalate|<rid>|<step>
REMIND = kind("remind", "relay.core.sla.remind", IN_SCHEDULER, of_request=True)  # remind|<rid>|<step>
FALLBACK = kind("fallback", "relay.core.sla.fallback", IN_SCHEDULER, of_request=True)  # fallback|<event_id>
DIGEST = kind("digest", "relay.core.sla.digest", ROUTINE)  # digest|<staff_id>
PURGE = kind("purge", "relay.core.retention.purge_on_timer", ROUTINE)  # purge|daily


def deliver_timer(event_id: str) -> str:
    return DELIVER.id(event_id)


def escalate_timer(request_id: str, step: int) -> str:
    return ESCALATE.id(request_id, step)


def remind_timer(request_id: str, step: int) -> str:
    return REMIND.id(request_id, step)


def fallback_timer(event_id: str) -> str:
    return FALLBACK.id(event_id)


def digest_timer(staff_id: str) -> str:
    return DIGEST.id(staff_id)


def request_of(timer_id: str) -> str | None:
    """The request a timer belongs to (`escalate|<rid>|n`, `deliver|<rid>.<...>`), or None."""
    name, _, rest = timer_id.partition("|")
    found = KINDS.get(name)
    if found is None or not found.of_request:
        return None
    return rest.split("|", 1)[0].split(".", 1)[0]


def arm(pipe: Pipeline | redis.Redis, school: str, timer_id: str, due_s: float, keep: bool = False) -> None:
    """Arm (or re-arm) a timer; with `keep`, a timer already armed keeps its time.

    The score rounds up to the millisecond: a claim at now_ms takes scores <= now_ms, so it never
    takes a timer before its due time."""
    pipe.zadd(keys.timers(school), {timer_id: math.ceil(due_s * 1000)}, nx=keep)


def disarm(pipe: Pipeline | redis.Redis, school: str, *timer_ids: str) -> None:
    if timer_ids:
        pipe.zrem(keys.timers(school), *timer_ids)


def claim(
    connection: redis.Redis, school: str, now_ms: int, limit: int = CLAIM_BATCH, lease_ms: int = CLAIM_LEASE_MS
) -> list[tuple[str, int]]:
    """Claim up to `limit` due timers of one school: [(timer_id, due_ms)], each now at now_ms + lease_ms."""
    claimed = connection.register_script(_CLAIM)(keys=[keys.timers(school)], args=[now_ms, limit, lease_ms])
    return _pairs(claimed)


def _pairs(claimed: list[bytes]) -> list[tuple[str, int]]:
    return [(claimed[i].decode(), int(float(claimed[i + 1]))) for i in range(0, len(claimed), 2)]


@functools.cache
def _handler(path: str) -> Callable[[str, str], object]:
    module, _, name = path.rpartition(".")
    handler: Callable[[str, str], object] = getattr(importlib.import_module(module), name)
    return handler


def fire_one(school_id: str, timer_id: str) -> object:
    """Run a timer's handler now (what a batch does for each of its timers)."""
    name, _, rest = timer_id.partition("|")
    return _handler(KINDS[name].job)(school_id, rest)


class TimerBatchFailed(Exception):
    """Some handlers of a batch raised: the batch's job is marked failed (their timers fire again after the lease)."""


def fire_batch(school_id: str, mark_ms: int, timer_ids: list[str]) -> str:
    """One claim's timers of one queue (a job, or the scheduler itself): each timer's handler, in due order,
    while it is still ours.

    `mark_ms` is the score the claim gave them. A timer at another score was re-armed (a later due time:
    firing it now would be early), disarmed, or claimed again after the lease (another batch fires it)."""
    r = get_runtime().redis
    timers = keys.timers(school_id)
    fired = skipped = 0
    failed: list[str] = []
    for timer_id in timer_ids:
        if r.zscore(timers, timer_id) != mark_ms:
            skipped += 1
            continue
        try:
            fire_one(school_id, timer_id)
            fired += 1
        except Exception:  # the lease brings it back; one bad timer must not stop the others
            log.exception("timer_fire_failed", school_id=school_id, timer=timer_id)
            failed.append(timer_id)
    if failed:
        raise TimerBatchFailed(f"{len(failed)} of {len(timer_ids)} timers failed: {failed[:5]}")
    return f"fired {fired}, skipped {skipped}"


class Scheduler:
    """Polls every school's timer set and hands what is due to the workers, one batch job per queue."""

    def __init__(
        self,
        connection: redis.Redis,
        schools: Callable[[], list[str]],
        queues: Mapping[str, Queue],
        poll_seconds: float = 0.05,
        lease_seconds: float = CLAIM_LEASE_MS / 1000,
        batch: int = CLAIM_BATCH,
        on_lateness: Callable[[float], None] | None = None,
        on_overdue: Callable[[], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self._redis = connection
        self._claim = connection.register_script(_CLAIM)
        self._schools = schools
        self._queues = queues
        self._poll = poll_seconds
        self._lease_ms = int(lease_seconds * 1000)
        self._batch = batch
        self._on_lateness = on_lateness
        self._on_overdue = on_overdue
        self._heartbeat = heartbeat  # called every loop, Redis or not: this loop is alive
        self._full = False  # the last tick took a full batch from some school
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now_s: float | None = None) -> int:
        """Claim what is due and hand it out; returns how many timers were claimed (of all schools)."""
        schools = self._schools()
        if not schools:
            return 0
        now_s = now_s if now_s is not None else clock.now()
        now_ms = int(now_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for school in schools:
            self._claim(keys=[keys.timers(school)], args=[now_ms, self._batch, self._lease_ms], client=pipe)
        claimed = 0
        self._full = False
        for school, replies in zip(schools, pipe.execute(), strict=True):
            timers = _pairs(replies)
            claimed += len(timers)
            self._full = self._full or len(timers) >= self._batch
            if timers:
                self._hand_out(school, timers, now_ms + self._lease_ms)
        return claimed

    def _hand_out(self, school: str, timers: list[tuple[str, int]], mark_ms: int) -> None:
        batches: dict[str, list[str]] = {}
        for timer_id, due_ms in timers:
            self._count_lateness(school, timer_id, due_ms / 1000)
            found = KINDS.get(timer_id.partition("|")[0])
            if found is None:
                log.warning("unknown_timer", school_id=school, timer=timer_id)
                disarm(self._redis, school, timer_id)
            else:
                batches.setdefault(found.queue, []).append(timer_id)
        # The jobs first, so that routine work is not held up by the batch the scheduler runs itself.
        for queue, timer_ids in batches.items():
            if queue == IN_SCHEDULER:
                continue
            try:
                self._queues[queue].enqueue(fire_batch, school, mark_ms, timer_ids, result_ttl=0, failure_ttl=86400)
            except redis.RedisError:  # the lease brings them back
                log.exception("timer_batch_not_queued", school_id=school, queue=queue, count=len(timer_ids))
        if IN_SCHEDULER in batches:
            try:
                fire_batch(school, mark_ms, batches[IN_SCHEDULER])
            except TimerBatchFailed:
                pass  # each failure is logged; the lease brings those timers back

    def _count_lateness(self, school: str, timer_id: str, due_s: float) -> None:
        lateness = max(0.0, clock.now() - due_s)
        if self._on_lateness is not None:
            self._on_lateness(lateness)
        if lateness > OVERDUE_SECONDS:
            # A timer whose worker died, or a scheduler that fell behind: fired now, and counted.
            log.warning("timer_overdue", school_id=school, timer=timer_id, late_s=round(lateness, 3))
            if self._on_overdue is not None:
                self._on_overdue()

    def run(self) -> None:
        while not self._stop.is_set():
            if self._heartbeat is not None:
                self._heartbeat()
            try:
                self.tick()
            except redis.RedisError as exc:
                log.warning("timer_poll_failed", error=type(exc).__name__)
                self._full = False
            # Only a full claim polls again at once: more may be due. Polling at once after any claim
            # made one tiny batch after another (a job per one or two timers, as before batching).
            if not self._full:
                self._stop.wait(self._poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="relay-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
