"""Timers in one table, claimed in batches (issue #19, items 3 and 6).

The table and the claim against a real Redis (the literal key and scores, as rq's tests assert
theirs); then real `relay worker` processes with one more line in the table (tests/timer_probe.py)
on a Redis of their own: a worker killed with kill -9 while it holds a claimed batch, a timer
re-armed later while its batch waits, and the bound on a claim. Every wait polls a condition.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import timer_probe
from rq import Queue, Worker
from support.spine import Stack, WebhookReceiver, relay_env, stop, wait_until, write_school_yaml
from timer_probe import PROBE, fired_key, hold_key, holder_key, release_key

from relay.base import keys
from relay.base.directory import load_yaml, publish
from relay.base.runtime import QUEUES
from relay.cli.embedded import EmbeddedRedis
from relay.core import timers
from relay.core.timers import arm, disarm

LEASE_SECONDS = 3  # the probe workers' RELAY_TIMER_LEASE_SECONDS: a dead worker's timers come back after it
NOW_MS = 1_900_000_000_000  # a fixed moment for the claim tests (they pass `now` in)


# The table ------------------------------------------------------------------------------------------


def test_every_timer_kind_is_one_line_of_the_table() -> None:
    assert {name: (k.job, k.queue, k.of_request) for name, k in timers.KINDS.items() if name != "probe"} == {
        "deliver": ("relay.core.jobs.watchdog", "scheduler", True),
        "escalate": ("relay.core.jobs.escalate_on_timer", "scheduler", True),
        "remind": ("relay.core.sla.remind", "scheduler", True),
        "fallback": ("relay.core.sla.fallback", "scheduler", True),
        "digest": ("relay.core.sla.digest", "routine", False),
        "purge": ("relay.core.retention.purge_on_timer", "routine", False),
    }
    assert timers.deliver_timer("r1.urgent.0.nurse") == "deliver|r1.urgent.0.nurse"
    assert timers.escalate_timer("r1", 2) == "escalate|r1|2"
    assert timers.remind_timer("r1", 1) == "remind|r1|1"
    assert timers.fallback_timer("r1.urgent.0.nurse") == "fallback|r1.urgent.0.nurse"
    assert timers.digest_timer("aa") == "digest|aa"
    assert timers.PURGE.id("daily") == "purge|daily"
    assert [timers.request_of(t) for t in ("escalate|r1|2", "deliver|r1.urgent.0.nurse", "fallback|r1.x.0.aa",
                                           "remind|r1|1", "digest|aa", "purge|daily", "witness|r1")] == [
        "r1", "r1", "r1", "r1", None, None, None]
    assert keys.timers("s1") == "relay:s1:timers"


def test_arm_keep_leaves_an_armed_timer_its_time_and_disarm_takes_several(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    school = "t-" + uuid.uuid4().hex[:8]
    try:
        arm(r, school, "purge|daily", 1_900_000_000)
        arm(r, school, "purge|daily", 1_800_000_000, keep=True)
        arm(r, school, "digest|aa", 1_900_000_000.0004)  # never early: a fraction of a millisecond rounds up
        assert r.zrange(f"relay:{school}:timers", 0, -1, withscores=True) == [
            (b"purge|daily", 1_900_000_000_000.0), (b"digest|aa", 1_900_000_000_001.0)]
        disarm(r, school, "purge|daily", "digest|aa")
        disarm(r, school)  # nothing to remove: no command at all
        assert not r.exists(f"relay:{school}:timers")
    finally:
        r.delete(f"relay:{school}:timers")


# The claim ------------------------------------------------------------------------------------------


def test_a_claim_takes_the_due_timers_up_to_the_bound_and_leases_them_to_one_mark(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    school = "t-" + uuid.uuid4().hex[:8]  # not published: no session worker polls it
    key = f"relay:{school}:timers"
    due = {f"escalate|r{n:03d}|1": NOW_MS - (300 - n) * 1000 for n in range(250)}
    try:
        with r.pipeline(transaction=True) as pipe:
            for timer_id, ms in due.items():
                arm(pipe, school, timer_id, ms / 1000)
            arm(pipe, school, "escalate|later|1", (NOW_MS + 1000) / 1000)
            pipe.execute()

        first = timers.claim(r, school, NOW_MS, limit=200, lease_ms=15_000)
        assert first == list(due.items())[:200]  # in due order
        mark = NOW_MS + 15_000
        assert r.zcount(key, mark, mark) == 200
        assert r.zscore(key, "escalate|r199|1") == mark
        assert r.zscore(key, "escalate|r200|1") == due["escalate|r200|1"]  # past the bound: still due, unclaimed
        assert r.zscore(key, "escalate|later|1") == NOW_MS + 1000  # not due: untouched

        assert timers.claim(r, school, NOW_MS, limit=200, lease_ms=15_000) == list(due.items())[200:]
        assert timers.claim(r, school, NOW_MS, limit=200, lease_ms=15_000) == []
        assert r.zcount(key, mark, mark) == 250 and r.zcard(key) == 251
        # The lease runs out: whatever no batch handled is due again, and claimed again (the later one too, now).
        again = timers.claim(r, school, mark, limit=1000, lease_ms=15_000)
        assert again == [("escalate|later|1", NOW_MS + 1000)] + [(timer_id, mark) for timer_id in due]
    finally:
        r.delete(key)


def test_one_claim_makes_one_batch_job_per_queue_and_respects_the_bound(redis_url: str) -> None:
    """The kinds that go to a queue (the scheduler's own batch, the emergency steps, is tested with real
    workers in test_sla.py and below)."""
    r = redis.Redis.from_url(redis_url)
    school = "t-" + uuid.uuid4().hex[:8]
    key = f"relay:{school}:timers"
    queues = {name: Queue(f"relaytest-batches-{uuid.uuid4().hex[:8]}-{name}", connection=r) for name in QUEUES}
    scheduler = timers.Scheduler(r, lambda: [school], queues, lease_seconds=15, batch=200)
    try:
        with r.pipeline(transaction=True) as pipe:
            for timer_id in ("probe|a", "probe|b", "digest|aa", "witness|x"):
                arm(pipe, school, timer_id, (NOW_MS - 1000) / 1000)
            arm(pipe, school, "escalate|rC|1", (NOW_MS + 1000) / 1000)
            pipe.execute()
        assert scheduler.tick(NOW_MS / 1000) == 4
        mark = NOW_MS + 15_000
        [emergency], [routine] = queues["emergency"].jobs, queues["routine"].jobs
        assert emergency.func_name == routine.func_name == "relay.core.timers.fire_batch"
        assert emergency.args == (school, mark, ["probe|a", "probe|b"])  # the probe kind's queue (timer_probe.py)
        assert routine.args == (school, mark, ["digest|aa"])
        assert queues["urgent"].count == 0
        assert r.zscore(key, "witness|x") is None  # an unknown kind: logged and removed
        assert r.zscore(key, "escalate|rC|1") == NOW_MS + 1000
        assert scheduler.tick(NOW_MS / 1000) == 0 and queues["emergency"].count == 1

        for queue in queues.values():
            queue.empty()
        with r.pipeline(transaction=True) as pipe:
            for n in range(450):
                arm(pipe, school, PROBE.id(f"n{n:03d}"), (NOW_MS - 1000) / 1000)
            pipe.execute()
        assert [scheduler.tick(NOW_MS / 1000) for _ in range(4)] == [200, 200, 50, 0]
        assert [len(job.args[2]) for job in queues["emergency"].jobs] == [200, 200, 50]
    finally:
        r.delete(key)
        for queue in queues.values():
            queue.delete(delete_jobs=True)


# Real workers ---------------------------------------------------------------------------------------


@dataclass
class Probes:
    stack: Stack  # its workers are tests/timer_probe.py: `relay worker` with the probe kind
    school_id: str

    @property
    def redis(self) -> redis.Redis:
        return self.stack.redis

    def arm_at_once(self, names: list[str], due_s: float) -> None:
        """Arm probes in one transaction: one claim sees all of them or none."""
        with self.redis.pipeline(transaction=True) as pipe:
            for name in names:
                arm(pipe, self.school_id, PROBE.id(name), due_s)
            pipe.execute()

    def runs(self, prefix: str) -> list[tuple[str, float, str]]:
        """(name, started at, job id) of each run of the probes named `prefix...`, in order."""
        found = []
        for entry in self.redis.lrange(fired_key(self.school_id), 0, -1):
            name, started, job_id = entry.decode().split(" ")
            if name.startswith(prefix):
                found.append((name, float(started), job_id))
        return found

    def settled(self, prefix: str) -> bool:
        """None of these probes armed any more and no batch waiting or running."""
        armed = self.redis.zscan_iter(keys.timers(self.school_id), match=f"probe|{prefix}*")
        if next(armed, None) is not None:
            return False
        queue = self.stack.queues[0]
        live = {w.pid for w in self.stack.live_workers()}
        busy = [w for w in Worker.all(connection=self.redis, queue=queue)
                if int(w.name.rsplit("-", 1)[1]) in live and w.get_current_job_id() is not None]
        return queue.count == 0 and not busy


@pytest.fixture(scope="module")
def probes(receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probes]:
    base = tmp_path_factory.mktemp("timer-batches")
    server = EmbeddedRedis(base / "redis").start()
    stack: Stack | None = None
    try:
        school_id = "t-" + uuid.uuid4().hex[:8]
        config = write_school_yaml(base / "school.yaml", school_id, receiver.url)
        env = relay_env(server.url, config, "http://127.0.0.1:9") | {
            "RELAY_TIMER_LEASE_SECONDS": str(LEASE_SECONDS), "RELAY_LOG_LEVEL": "warning"}
        stack = Stack(server.url, env, base)
        stack.worker_command = [sys.executable, timer_probe.__file__]
        publish(stack.redis, load_yaml(config))
        stack.ensure_workers(2)
        yield Probes(stack, school_id)
    finally:
        if stack is not None:
            for process in stack.workers:
                stop(process)  # the Redis is ours alone: nothing to clean up in it
        server.stop()


def test_a_worker_killed_holding_a_claimed_batch_leaves_every_timer_to_fire_exactly_once(probes: Probes) -> None:
    probes.stack.ensure_workers(2)
    r, school = probes.redis, probes.school_id
    names = [f"kill-{n}" for n in range(10)]  # one claim, one batch, run in this order (same due time, by id)
    r.delete(holder_key(school))
    r.set(hold_key(school, "kill-3"), 1)
    probes.arm_at_once(names, time.time() + 0.2)

    holder = wait_until(lambda: r.get(holder_key(school)), 10, "a worker to stop inside kill-3")
    mark = r.zscore(keys.timers(school), PROBE.id("kill-4"))
    # The batch ran its first three and stopped in the fourth: the rest wait under the claim's lease.
    assert [name for name, *_ in probes.runs("kill-")] == ["kill-0", "kill-1", "kill-2"]
    assert all(r.zscore(keys.timers(school), PROBE.id(name)) == mark for name in names[3:])
    probes.stack.kill9(int(holder))

    wait_until(lambda: probes.settled("kill-"), 30, "the dead worker's timers to fire after the lease")
    runs = probes.runs("kill-")
    assert Counter(name for name, *_ in runs) == Counter(names)  # each exactly once
    first_job = {job for name, _, job in runs if name in names[:3]}
    assert len(first_job) == 1 and not first_job & {job for name, _, job in runs if name in names[3:]}
    assert all(started * 1000 >= (mark or 0) for name, started, _ in runs if name in names[3:])  # after the lease
    probes.stack.ensure_workers(2)


def test_a_timer_re_armed_later_while_its_batch_waits_fires_at_its_new_time_and_not_before(probes: Probes) -> None:
    probes.stack.ensure_workers(2)
    r, school = probes.redis, probes.school_id
    r.delete(holder_key(school))
    r.set(hold_key(school, "early-0"), 1)
    probes.arm_at_once(["early-0", "early-1", "early-2"], time.time() + 0.2)
    wait_until(lambda: r.get(holder_key(school)), 10, "a worker to stop inside early-0")

    # While the batch holds them: one is re-armed later (a re-triage, a retry), one disarmed (an ack).
    later = time.time() + 1.5
    arm(r, school, PROBE.id("early-1"), later)
    disarm(r, school, PROBE.id("early-2"))
    released_at = time.time()
    r.rpush(release_key(school, "early-0"), 1)

    wait_until(lambda: probes.settled("early-"), 15, "the re-armed timer to fire")
    runs = {name: (started, job) for name, started, job in probes.runs("early-")}
    assert len(probes.runs("early-")) == 2 and set(runs) == {"early-0", "early-1"}  # the disarmed one never
    assert runs["early-1"][0] >= later > released_at  # at its new time, not when the batch went on
    assert runs["early-1"][1] != runs["early-0"][1]  # by a later claim's batch


def test_a_claim_takes_at_most_the_bound_and_every_timer_fires_once(probes: Probes) -> None:
    probes.stack.ensure_workers(2)
    names = [f"bound-{n:03d}" for n in range(450)]
    probes.arm_at_once(names, time.time() + 0.2)
    wait_until(lambda: probes.settled("bound-"), 30, "450 timers to fire")
    runs = probes.runs("bound-")
    assert Counter(name for name, *_ in runs) == Counter(names)
    per_job = Counter(job for *_, job in runs)
    assert max(per_job.values()) <= timers.CLAIM_BATCH == 200
    assert len(per_job) >= 3
