"""Redis Sentinel failover with nothing lost (issue #16): real redis-server processes (a master, a replica,
three sentinels with down-after-milliseconds 1000), `relay serve` and two `relay worker`, the master killed
with SIGKILL while parents submit, RELAY_INTAKE_MIN_REPLICAS=1. The gap and WAIT's cost are measured by
tests/bench/failover_bench.py; here only what must hold."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.failover import Failover, escalation_to, failover_stack, kill_master_during_intake, nurse_paged
from support.spine import WebhookReceiver, wait_until


@pytest.fixture
def failover(tmp_path: Path, private_receiver: WebhookReceiver) -> Iterator[Failover]:
    with failover_stack(tmp_path, private_receiver) as run:
        yield run


def test_a_killed_master_loses_no_accepted_request_and_every_emergency_still_escalates_once(
    failover: Failover, private_receiver: WebhookReceiver,
) -> None:
    receiver = private_receiver
    kill_master_during_intake(failover, receiver)
    assert failover.new is not None and failover.old is not None and failover.new.port != failover.old.port

    stored = failover.parents.stored()
    assert len(stored) == len(failover.parents.sent)  # every parent got a 201 in the end, retrying 503s
    assert any(0 in s.statuses or 503 in s.statuses for s in stored)  # some met the failover
    assert failover.lost() == []  # every 201 is readable from the new master

    emergencies = {s.request_id for s in stored if s.p0}
    wait_until(lambda: emergencies <= nurse_paged(failover, receiver), 30, "every emergency to reach the nurse",
               interval=0.1)

    # The P0 nobody acknowledged: step 1 before the kill, step 2 after, each once (one entry, one event id).
    timeline = failover.stack.redis.lrange(f"relay:{failover.school_id}:timeline:{failover.escalating}", 0, -1)
    steps = Counter(entry["step"] for entry in map(json.loads, timeline) if entry["kind"] == "escalated")
    assert steps == {1: 1, 2: 1}
    paged = {p.event_id for who in ("duty", "principal") for p in receiver.received(escalation_to(failover, who))}
    assert paged == {f"{failover.escalating}.escalated.1.duty", f"{failover.escalating}.escalated.2.principal"}

    # redis-py asks the sentinels in turn and believes the first: one that has not yet heard of the failover
    # names the old node for a moment once it is back (as a replica). /readyz follows as they agree.
    def names_new_master() -> bool:
        ready = httpx.get(f"{failover.stack.url}/readyz", timeout=2)
        return ready.status_code == 200 and ready.json()["master"] == f"127.0.0.1:{failover.new.port}"

    wait_until(names_new_master, 20, "/readyz to name the new master", interval=0.2)

