"""`relay worker`: an RQ worker with the timer scheduler beside it.

The worker class is RQ's SimpleWorker: it runs jobs in its own process instead of
forking one per job. A fork costs milliseconds an emergency should not pay, and
our jobs are short I/O with their own timeouts (see the README's measurements).
A worker killed mid-job is covered by the delivery watchdog timer, not by RQ's
maintenance run (which only notices after minutes).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from rq import SimpleWorker, Worker

from relay.base import metrics
from relay.base.log import configure, log
from relay.base.runtime import QUEUES, connect_from, get_runtime
from relay.core import retention
from relay.core.timers import Scheduler

RECONNECT_PAUSE_MAX_SECONDS = 2.0


def _toucher(path: str, every_seconds: float = 5.0) -> Callable[[], None]:
    """Touch `path` at most every few seconds: a liveness probe that finds it stale restarts the worker."""
    last = 0.0

    def touch() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < every_seconds:
            return
        last = now
        try:
            Path(path).touch()
        except OSError as exc:  # a probe failing is better than a timer loop dying
            log.warning("heartbeat_failed", error=type(exc).__name__)

    return touch


def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        action()
        time.sleep(seconds)


def run_worker(with_scheduler: bool = True, burst: bool = False) -> None:
    runtime = get_runtime()
    configure(runtime.settings.log_level)
    if runtime.settings.metrics_port:
        metrics.serve(runtime.settings.metrics_port)
    scheduler = None
    if with_scheduler:
        scheduler = Scheduler(
            runtime.redis,
            runtime.directories.school_ids,
            runtime.queues,
            poll_seconds=runtime.settings.timer_poll_seconds,
            lease_seconds=runtime.settings.timer_lease_seconds,
            on_lateness=metrics.timer_lateness,
            on_overdue=metrics.timer_overdue,
            heartbeat=_toucher(runtime.settings.heartbeat_file) if runtime.settings.heartbeat_file else None,
        )
        retention.arm_daily(runtime, runtime.directories.school_ids())  # each school's daily purge
        scheduler.start()
    elif runtime.settings.heartbeat_file:
        # No timer loop to vouch for this worker: a plain thread says the process is there.
        touch = _toucher(runtime.settings.heartbeat_file, every_seconds=0)
        threading.Thread(target=_every, args=(5.0, touch), name="relay-heartbeat", daemon=True).start()
    # Urgent first: a worker always takes an emergency before routine work.
    names = [runtime.queues[name].name for name in QUEUES]
    # RQ blocks on BLPOP for minutes; its connection must not carry the API's short socket timeout. Found
    # through Sentinel when configured: each reconnect asks the sentinels, so BLPOP resumes on a new master.
    blocking = connect_from(runtime.settings, socket_timeout=None)
    worker_class = Worker if runtime.settings.worker_class == "fork" else SimpleWorker
    log.info("worker_started", pid=os.getpid(), queues=names)
    try:
        attempt = 0
        while True:
            name = f"relay-{socket.gethostname()}-{os.getpid()}" + (f"-r{attempt}" if attempt else "")
            worker = worker_class(names, connection=blocking, name=name)
            # RQ waits 1, 2, 4 ... 60 s between attempts to reach Redis: after a failover that would leave
            # emergencies queued on the new master for up to a minute. Every 2 s at most costs nothing.
            worker.max_connection_wait_time = RECONNECT_PAUSE_MAX_SECONDS
            try:
                worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
                if burst or worker_stopping(worker):
                    return
                # RQ's loop quits on an error it does not expect (Redis went away between two jobs,
                # a demoted master refusing a write): start a new worker rather than end the process.
                reason = "work_loop_ended"
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Redis went away mid-job and RQ could not even record it: the job's watchdog timer
                # hands it to a worker later; this process waits for Redis instead of exiting.
                reason = type(exc).__name__
            attempt += 1
            log.warning("worker_lost_redis", error=reason, restart=attempt)
            _wait_for_redis(blocking)
    finally:
        if scheduler is not None:
            scheduler.stop()


def worker_stopping(worker: object) -> bool:
    """Whether RQ's work loop ended because the process was asked to stop (SIGTERM, SIGINT)."""
    return bool(getattr(worker, "_stop_requested", False) or getattr(worker, "_shutdown_requested_date", None))


def _wait_for_redis(connection: redis.Redis, pause: float = 0.5) -> None:
    while True:
        try:
            connection.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(pause)
