"""Timer lateness: how long after its due time a timer's job starts, with 1,000 and 10,000 timers pending.

Runs the real firing path on this machine: a private redis-server (relay.embedded, AOF everysec)
and worker processes that are `relay worker` (RQ SimpleWorker, relay.timers.Scheduler polling
every school's timer set, relay.jobs.fire enqueueing the timer's job) with one extra timer kind,
`bench|<n>|<due ms>`, whose job is cheap: it removes its timer and records the moment it started,
in one transaction, as a real timer job does. Arms the timers at once in one school's set, spread
evenly over --spread seconds, waits until every one has fired and nothing is left to run, then prints
the lateness (job start minus due time) p50 / p99 / max, and checks that each timer fired exactly
once (no duplicate, none lost).

    .venv/bin/python tests/bench/timer_bench.py [--timers 1000 10000] [--workers 3] [--spread 20]

Aim: p99 < 250 ms, max < 1 s. Exits 1 on a duplicate or lost firing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue, get_current_job

from relay.directory import publish
from relay.embedded import EmbeddedRedis
from relay.store import text
from routing.validation import check_config

SCHOOL = "bench-timers"
FIRED = "relaybench:fired"  # one entry per job run: "<n>|<due ms> <started at, epoch s>"
PREFIX = "relaybench"
HERE = Path(__file__).resolve()


def fired(school_id: str, rest: str) -> str:
    """The bench timer's job: remove the timer and record when the job started, in one transaction."""
    from relay.runtime import get_runtime
    from relay.timers import disarm

    started = time.time()
    job = get_current_job()
    enqueued = job.enqueued_at.timestamp() if job is not None and job.enqueued_at else started
    with get_runtime().redis.pipeline(transaction=True) as pipe:
        disarm(pipe, school_id, f"bench|{rest}")
        pipe.rpush(FIRED, f"{rest} {started:.6f} {enqueued:.6f}")
        pipe.execute()
    return "fired"


def run_worker() -> None:
    """`relay worker`, knowing one more timer kind."""
    from relay import jobs
    from relay.worker import run_worker as relay_worker

    jobs.TIMER_JOBS["bench"] = "timer_bench.fired"  # importable: this file's folder is sys.path[0]
    relay_worker()


def start_workers(url: str, count: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(REDIS_URL=url, RELAY_QUEUE_PREFIX=PREFIX, RELAY_SECRET_KEY="bench", RELAY_LOG_LEVEL="warning",
               PYTHONUNBUFFERED="1")
    workers = []
    for n in range(count):
        with open(logs / f"worker-{n}.log", "wb") as out:
            workers.append(subprocess.Popen([sys.executable, str(HERE), "--worker"], env=env, stdout=out,
                                            stderr=subprocess.STDOUT))
    connection = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while len(connection.smembers("rq:workers")) < count:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit(f"workers did not start; see {logs}")
        time.sleep(0.05)
    return workers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def idle(connection: redis.Redis) -> bool:
    """No bench timer left, no job queued and none running."""
    if next(connection.zscan_iter(f"relay:{SCHOOL}:timers", match="bench|[0-9]*", count=1000), None) is not None:
        return False  # (the ones due later, and the school's daily purge timer, stay)
    for name in ("urgent", "routine"):
        queue = Queue(f"{PREFIX}-{name}", connection=connection)
        if queue.count or queue.started_job_registry.get_job_ids(cleanup=False):
            return False
    return True


def run(connection: redis.Redis, timers: int, spread: float, background: int = 0, lead: float = 2.0) -> dict[str, float]:
    """Arm `timers` due over `spread` seconds (plus `background` due in an hour: a bigger set to claim from)."""
    connection.delete(FIRED)
    start_ms = int((time.time() + lead) * 1000)
    step_ms = spread * 1000 / timers
    due = {f"{n}|{start_ms + int(n * step_ms)}": start_ms + int(n * step_ms) for n in range(timers)}
    later = {f"bench|later-{n}|0": start_ms + 3_600_000 + n for n in range(background)}
    connection.zadd(f"relay:{SCHOOL}:timers", {f"bench|{rest}": ms for rest, ms in due.items()} | later)
    deadline = time.monotonic() + lead + spread + 90
    while not (time.time() * 1000 > max(due.values()) and idle(connection)):
        if time.monotonic() > deadline:
            break  # the counts below say what is missing
        time.sleep(0.2)
    if later:
        connection.zrem(f"relay:{SCHOOL}:timers", *later)
    runs = [text(entry).split(" ") for entry in connection.lrange(FIRED, 0, -1)]
    seen: dict[str, int] = {}
    lateness, queued = [], []
    for rest, started, enqueued in runs:
        seen[rest] = seen.get(rest, 0) + 1
        lateness.append(float(started) * 1000 - due[rest])
        queued.append((float(started) - float(enqueued)) * 1000)
    return {
        "fired": len(seen),
        "duplicates": sum(n - 1 for n in seen.values()),
        "lost": len(set(due) - set(seen)),
        "early": sum(1 for x in lateness if x < 0),
        "p50": statistics.median(lateness) if lateness else float("nan"),
        "p99": percentile(lateness, 0.99) if lateness else float("nan"),
        "max": max(lateness) if lateness else float("nan"),
        "queued_p99": percentile(queued, 0.99) if queued else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, nargs="+", default=[1000, 10000], help="timers pending per run")
    parser.add_argument("--workers", type=int, default=3, help="`relay worker` processes (each with a scheduler)")
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which the due times are spread")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker()
        return 0

    ok = True
    with tempfile.TemporaryDirectory(prefix="timer-bench-") as directory:
        base = Path(directory)
        server = EmbeddedRedis(base / "redis").start()
        connection = redis.Redis.from_url(server.url)
        directory_, problems = check_config({"schools": [{"id": SCHOOL, "name": "计时器测试学校"}]})
        assert directory_ is not None, problems
        publish(connection, directory_)
        workers = start_workers(server.url, args.workers, base)
        try:
            load = os.getloadavg()[0]
            print(f"{args.workers} worker(s) on {os.cpu_count()} CPU(s), load average {load:.1f}; "
                  f"lateness = job start - due time, in ms")
            print(f"{'pending':>8}{'due within':>14}{'fired':>7}{'dup':>6}{'lost':>6}{'early':>6}"
                  f"{'p50':>9}{'p99':>9}{'max':>9}{'queue p99':>11}")
            # Each size twice: all due within the spread (a firing rate of size/spread per second), and
            # 1,000 due within it among the rest due later (the size of the set, at the first one's rate).
            plans = sorted({(n, 0) for n in args.timers} | {(1000, n - 1000) for n in args.timers if n > 1000},
                           key=lambda plan: (plan[0] + plan[1], plan[0]))
            for count, background in plans:
                result = run(connection, count, args.spread, background)
                print(f"{count + background:>8}{f'{count} in {args.spread:.0f} s':>14}{result['fired']:>7.0f}"
                      f"{result['duplicates']:>6.0f}{result['lost']:>6.0f}{result['early']:>6.0f}"
                      f"{result['p50']:>9.1f}{result['p99']:>9.1f}{result['max']:>9.1f}{result['queued_p99']:>11.1f}",
                      flush=True)
                ok = ok and not (result["duplicates"] or result["lost"] or result["early"])
            print("aim: p99 < 250 ms, max < 1000 ms; every timer fired exactly once, none before its due time")
            print("(dup: a timer handed out again because its job had not started within the claim lease)")
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
            server.stop()
    if not ok:
        print("FAILED: a duplicate, lost or early firing", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
