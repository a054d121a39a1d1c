"""`make bench-failover`: Redis Sentinel failover under intake (issue #16), on this machine.

Real processes: a master and its replica (AOF on), three sentinels (down-after-milliseconds 1000), all the
embedded Redis 6.2 (relay/cli/embedded.py); `relay serve` and two `relay worker` through the sentinels
with RELAY_INTAKE_MIN_REPLICAS=1. Prints, beside the aims of issue #16:
  - WAIT's cost at intake: POST /v1/requests latency with RELAY_INTAKE_MIN_REPLICAS=0 and =1, the same
    Redis, requests alternating between the two APIs (p50/p99 of each and the difference);
  - per failover run (BENCH_FAILOVER_RUNS, 3): parents submit all along (4 at a time, ~40 a second, retrying a 503
    with the same Idempotency-Key), the master gets SIGKILL; requests that got a 201 and are lost, the
    sentinels' switch, the gap from the master's death to the first 201 of a message sent after it,
    and whether every emergency reached the nurse.
Asserts nothing; the load average is printed (the machine may be shared).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.failover import (  # noqa: E402
    ROUTINE_TEXT,
    Failover,
    failover_stack,
    kill_master_during_intake,
    nurse_paged,
)
from support.spine import WebhookReceiver, caller_token, start_api, stop, wait_until  # noqa: E402

RUNS = int(os.environ.get("BENCH_FAILOVER_RUNS", "3"))
WAIT_SAMPLES = int(os.environ.get("BENCH_WAIT_SAMPLES", "1000"))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_cost(run: Failover, base: Path) -> None:
    """The same stream of routine requests to an API that waits for a replica and one that does not."""
    plain, plain_url = start_api(run.stack.env | {"RELAY_INTAKE_MIN_REPLICAS": "0"}, base)
    timings: dict[str, list[float]] = {"0": [], "1": []}
    try:
        clients = {"0": httpx.Client(base_url=plain_url, timeout=5), "1": httpx.Client(base_url=run.stack.url, timeout=5)}
        for number in range(WAIT_SAMPLES * 2 + 40):
            replicas = "1" if number % 2 else "0"
            headers = {"Authorization": f"Bearer {caller_token('parent', f'pg{number % 1500}', run.school_id)}",
                       "Idempotency-Key": uuid.uuid4().hex}
            started = time.perf_counter()
            answer = clients[replicas].post("/v1/requests", json={"student_id": f"ps{number % 1500}",
                                                                   "text": ROUTINE_TEXT}, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 201, answer.text
            if number >= 40:  # the first ones warm both processes up
                timings[replicas].append(elapsed)
        for client in clients.values():
            client.close()
    finally:
        stop(plain)
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    p99 = {k: percentile(v, 99) for k, v in timings.items()}
    print(f"WAIT at intake ({WAIT_SAMPLES} POST /v1/requests each, sequential, alternating):")
    print(f"  RELAY_INTAKE_MIN_REPLICAS=0: p50 {p50['0']:.2f} ms  p99 {p99['0']:.2f} ms")
    print(f"  RELAY_INTAKE_MIN_REPLICAS=1: p50 {p50['1']:.2f} ms  p99 {p99['1']:.2f} ms")
    print(f"  WAIT's cost: p50 +{p50['1'] - p50['0']:.2f} ms  p99 +{p99['1'] - p99['0']:.2f} ms")


def one_failover(run: Failover, receiver: WebhookReceiver, number: int) -> float:
    kill_master_during_intake(run, receiver)
    stored = run.parents.stored()
    lost = run.lost()
    retried = sum(1 for s in stored if len(s.statuses) > 1)
    emergencies = {s.request_id for s in stored if s.p0}
    try:
        wait_until(lambda: emergencies <= nurse_paged(run, receiver), 30, "every emergency at the nurse", 0.1)
        nurse = "all"
    except AssertionError:
        nurse = f"{len(emergencies & nurse_paged(run, receiver))} of {len(emergencies)}"
    gap = run.gap_seconds
    print(f"failover run {number}: {len(stored)} requests got a 201 ({len(emergencies)} P0), "
          f"{retried} needed a retry; lost after a 201: {len(lost)} (aim 0)")
    print(f"  sentinels switched {run.switched_at - run.killed_at:.2f} s after SIGKILL; first 201 on the new master "
          f"{gap:.2f} s after it (aim <= 10 s); P0s at the nurse: {nurse}")
    return gap


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          f"(1 min) at start; Python {platform.python_version()}")
    gaps = []
    receiver = WebhookReceiver()
    try:
        for number in range(1, RUNS + 1):
            with tempfile.TemporaryDirectory(prefix="relay-failover-") as directory:
                base = Path(directory)
                with failover_stack(base, receiver) as run:
                    if number == 1:
                        wait_cost(run, base)
                    gaps.append(one_failover(run, receiver, number))
    finally:
        receiver.close()
    print(f"gap from the master's death to the first 201 on the new master over {len(gaps)} runs: "
          f"min {min(gaps):.2f} s, median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s; "
          f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
