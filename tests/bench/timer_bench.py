"""Timer lateness: how long after its due time a timer's job starts, with 1,000 and 10,000 timers pending.

Runs the real firing path on this machine: a private redis-server (relay.cli.embedded, AOF everysec)
and worker processes that are `relay worker` (RQ SimpleWorker, relay.core.timers.Scheduler claiming
every school's due timers in batches of up to 200 and running relay.core.timers.fire_batch on each) with
one extra line in the timer table, the kind `bench|<n>|<due ms>`, whose handler is cheap: it removes its
timer and records the moment it started, in one transaction, as a real timer handler does. Arms the
timers at once in one school's set, spread evenly over --spread seconds, waits until every one has
fired and nothing is left to run, then prints the lateness (handler start minus due time) p50 / p99 /
max, and checks that each timer fired exactly once (no duplicate, none lost) and none early.

    .venv/bin/python tests/bench/timer_bench.py [--timers 1000 10000] [--workers 3] [--spread 20]
                                                [--queue emergency|scheduler]

By default the bench kind runs where an emergency's next steps (escalate, remind, fallback) and the
delivery watchdog run: in the scheduler's own thread, as it claims. --queue emergency sends each
claim's batch to a job on the emergency queue instead (where the digest and the purge go, on routine).

Aims (issue #19): 500 firings a second for 20 s with 3 workers: lateness p99 <= 250 ms, 0 duplicate,
0 lost, 0 early; and max < 1 s. Exits 1 on a duplicate, lost or early firing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from rq import Queue, get_current_job

from relay.base.directory import publish
from relay.base.runtime import EMERGENCY, QUEUES
from relay.base.store import text
from relay.cli.embedded import EmbeddedRedis
from relay.core.timers import IN_SCHEDULER, arm, disarm
from routing.validation import check_config

SCHOOL = "bench-timers"
FIRED = "relaybench:fired"  # one entry per run: "<n>|<due ms> <started at, epoch s> <enqueued at> <job id>"
PREFIX = "relaybench"
HERE = Path(__file__).resolve()


def fired(school_id: str, rest: str) -> str:
    """The bench timer's handler: remove the timer and record when it started, in one transaction."""
    from relay.base.runtime import get_runtime

    started = time.time()
    job = get_current_job()  # the batch's job (none in the scheduler's thread)
    enqueued = job.enqueued_at.timestamp() if job is not None and job.enqueued_at else started
    with get_runtime().redis.pipeline(transaction=True) as pipe:
        disarm(pipe, school_id, f"bench|{rest}")
        pipe.rpush(FIRED, f"{rest} {started:.6f} {enqueued:.6f} {job.id if job is not None else '-'}")
        pipe.execute()
    return "fired"


def run_worker(queue: str) -> None:
    """`relay worker`, with one more line in the timer table."""
    from relay.cli.worker import run_worker as relay_worker
    from relay.core import timers

    timers.kind("bench", "timer_bench.fired", queue)  # importable: this file's folder is sys.path[0]
    relay_worker()


def start_workers(url: str, count: int, logs: Path, queue: str) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(REDIS_URL=url, RELAY_QUEUE_PREFIX=PREFIX, RELAY_SECRET_KEY="bench", RELAY_LOG_LEVEL="warning",
               PYTHONUNBUFFERED="1", TIMER_BENCH_QUEUE=queue)
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
    for name in QUEUES:
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
    with connection.pipeline(transaction=False) as pipe:
        for timer_id, ms in [(f"bench|{rest}", ms) for rest, ms in due.items()] + list(later.items()):
            arm(pipe, SCHOOL, timer_id, ms / 1000)
        pipe.execute()
    deadline = time.monotonic() + lead + spread + 90
    while not (time.time() * 1000 > max(due.values()) and idle(connection)):
        if time.monotonic() > deadline:
            break  # the counts below say what is missing
        time.sleep(0.2)
    disarm(connection, SCHOOL, *later)
    runs = [text(entry).split(" ") for entry in connection.lrange(FIRED, 0, -1)]
    seen: dict[str, int] = {}
    lateness, queued = [], []
    for rest, started, enqueued, _ in runs:
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
        "jobs": len({job for *_, job in runs if job != "-"}),
    }


# The aims for the fastest row (500 firings a second for 20 s): (figure, label, aim, met?).
AIMS: list[tuple[str, str, str, Callable[[float], bool]]] = [
    ("p99", "lateness p99", "<= 250 ms", lambda v: v <= 250),
    ("duplicates", "duplicates", "0", lambda v: v == 0),
    ("lost", "lost", "0", lambda v: v == 0),
    ("early", "early", "0", lambda v: v == 0),
    ("max", "lateness max", "< 1000 ms", lambda v: v < 1000),
]


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, nargs="+", default=[1000, 10000], help="timers pending per run")
    parser.add_argument("--workers", type=int, default=3, help="`relay worker` processes (each with a scheduler)")
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which the due times are spread")
    parser.add_argument("--queue", default=IN_SCHEDULER, choices=[IN_SCHEDULER, EMERGENCY],
                        help="where the bench handler runs: a batch job in this queue, or the scheduler's thread")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(os.environ.get("TIMER_BENCH_QUEUE", IN_SCHEDULER))
        return 0

    ok = True
    with tempfile.TemporaryDirectory(prefix="timer-bench-") as directory:
        base = Path(directory)
        server = EmbeddedRedis(base / "redis").start()
        connection = redis.Redis.from_url(server.url)
        directory_, problems = check_config({"schools": [{"id": SCHOOL, "name": "计时器测试学校"}]})
        assert directory_ is not None, problems
        publish(connection, directory_)
        workers = start_workers(server.url, args.workers, base, args.queue)
        where = "batch jobs (one per claim)" if args.queue != IN_SCHEDULER else "the scheduler's thread"
        try:
            print(f"{args.workers} worker(s) on {os.cpu_count()} CPU(s), load average {load_average()} "
                  f"(1, 5, 15 min); handlers run in {where}; lateness = handler start - due time, in ms")
            print(f"{'pending':>8}{'due within':>14}{'per s':>7}{'fired':>7}{'jobs':>6}{'dup':>5}{'lost':>5}"
                  f"{'early':>6}{'p50':>8}{'p99':>8}{'max':>8}{'queue p99':>11}")
            # Each size twice: all due within the spread (a firing rate of size/spread per second), and
            # 1,000 due within it among the rest due later (the size of the set, at the first one's rate).
            plans = sorted({(n, 0) for n in args.timers} | {(1000, n - 1000) for n in args.timers if n > 1000},
                           key=lambda plan: (plan[0] + plan[1], plan[0]))
            fastest: tuple[float, dict[str, float]] | None = None
            for count, background in plans:
                result = run(connection, count, args.spread, background)
                rate = count / args.spread
                print(f"{count + background:>8}{f'{count} in {args.spread:.0f} s':>14}{rate:>7.0f}"
                      f"{result['fired']:>7.0f}{result['jobs']:>6.0f}{result['duplicates']:>5.0f}"
                      f"{result['lost']:>5.0f}{result['early']:>6.0f}{result['p50']:>8.1f}{result['p99']:>8.1f}"
                      f"{result['max']:>8.1f}{result['queued_p99']:>11.1f}", flush=True)
                ok = ok and not (result["duplicates"] or result["lost"] or result["early"])
                if fastest is None or rate >= fastest[0]:
                    fastest = (rate, result)
            if fastest is not None:
                rate, result = fastest
                print(f"aims (issue #19) against the {rate:.0f}-per-second row ({args.workers} workers), "
                      f"load average now {load_average()}:")
                for figure, label, aim, met in AIMS:
                    value = result[figure]
                    shown = f"{value:.1f} ms" if figure in ("p99", "max") else f"{value:.0f}"
                    print(f"  {label:<14}aim {aim:<11}figure {shown:<12}{'met' if met(value) else 'MISSED'}")
            print("(jobs: RQ jobs that ran the handlers; dup: a timer whose handler ran twice)")
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
