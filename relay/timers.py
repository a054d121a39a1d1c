"""Timers in Redis: one sorted set per school, timer id by due time (ms), claimed atomically by any worker.

A timer id says what to do: `deliver|<event_id>`, `escalate|<request_id>|<step>`.
Claiming does not remove a timer: it pushes it a lease into the future, so a timer
whose job never ran (a worker killed mid-way) fires again by itself. The job that
handles a timer removes or re-arms it in the same transaction as its own writes,
and checks the request's current state first, so a duplicate firing does nothing.
A timer never fires before its due time: it is claimed only once its score is <= now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from redis.client import Pipeline

from relay import clock, keys
from relay.log import log

# KEYS[1] = timers zset; ARGV = now_ms, limit, lease_ms. Returns [id, due, id, due, ...].
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local lease_until = tonumber(ARGV[1]) + tonumber(ARGV[3])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], lease_until, due[i])
end
return due
"""

CLAIM_LEASE_MS = 15_000
CLAIM_BATCH = 200


OVERDUE_SECONDS = 2.0  # a timer claimed later than this past its due time is counted as overdue


def deliver_timer(event_id: str) -> str:
    return f"deliver|{event_id}"


def escalate_timer(request_id: str, step: int) -> str:
    return f"escalate|{request_id}|{step}"


def remind_timer(request_id: str, step: int) -> str:
    return f"remind|{request_id}|{step}"


def fallback_timer(event_id: str) -> str:
    return f"fallback|{event_id}"


def digest_timer(staff_id: str) -> str:
    return f"digest|{staff_id}"


def arm(pipe: Pipeline | redis.Redis, school: str, timer_id: str, due_s: float) -> None:
    pipe.zadd(keys.timers(school), {timer_id: int(due_s * 1000)})


def disarm(pipe: Pipeline | redis.Redis, school: str, timer_id: str) -> None:
    pipe.zrem(keys.timers(school), timer_id)


Fire = Callable[[str, str, float], None]  # (school, timer_id, due_s)


class Scheduler:
    """Polls every school's timer set and hands due timers to `fire` (which enqueues their job)."""

    def __init__(
        self,
        connection: redis.Redis,
        schools: Callable[[], list[str]],
        fire: Fire,
        poll_seconds: float = 0.05,
        on_lateness: Callable[[float], None] | None = None,
        on_overdue: Callable[[], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self._redis = connection
        self._claim = connection.register_script(_CLAIM)
        self._schools = schools
        self._fire = fire
        self._poll = poll_seconds
        self._on_lateness = on_lateness
        self._on_overdue = on_overdue
        self._heartbeat = heartbeat  # called every loop, Redis or not: this loop is alive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now_s: float | None = None) -> int:
        """Claim and fire what is due; returns how many fired."""
        schools = self._schools()
        if not schools:
            return 0
        now_s = now_s if now_s is not None else clock.now()
        now_ms = int(now_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for school in schools:
            self._claim(keys=[keys.timers(school)], args=[now_ms, CLAIM_BATCH, CLAIM_LEASE_MS], client=pipe)
        fired = 0
        for school, claimed in zip(schools, pipe.execute(), strict=True):
            for i in range(0, len(claimed), 2):
                timer_id = claimed[i].decode()
                due_s = float(claimed[i + 1]) / 1000
                lateness = max(0.0, clock.now() - due_s)
                if self._on_lateness is not None:
                    self._on_lateness(lateness)
                if lateness > OVERDUE_SECONDS:
                    # A timer whose worker died, or a scheduler that fell behind: fired now, and counted.
                    log.warning("timer_overdue", school_id=school, timer=timer_id, late_s=round(lateness, 3))
                    if self._on_overdue is not None:
                        self._on_overdue()
                try:
                    self._fire(school, timer_id, due_s)
                    fired += 1
                except Exception:  # the lease brings it back; one bad timer must not stop the others
                    log.exception("timer_fire_failed", school_id=school, timer=timer_id)
        return fired

    def run(self) -> None:
        while not self._stop.is_set():
            if self._heartbeat is not None:
                self._heartbeat()
            try:
                busy = self.tick()
            except redis.RedisError as exc:
                log.warning("timer_poll_failed", error=type(exc).__name__)
                busy = 0
            if not busy:
                self._stop.wait(self._poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="relay-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
