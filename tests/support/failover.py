"""The failover scenario of issue #16, shared by tests/test_failover.py (which asserts) and
tests/bench/failover_bench.py (which prints): `relay serve` and two `relay worker` against a master, its
replica and three sentinels, parents submitting all along, the master killed with SIGKILL.

Each parent retries a 503 (or a dropped connection) with the same Idempotency-Key, as the API asks.
Each writes about their own child, so no emergency joins another's (relay/core/intake.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from relay.base.runtime import connect
from support.sentinel import MASTER_NAME, RedisGroup, Server
from support.spine import (
    NO_LIMITS,
    Post,
    Stack,
    WebhookReceiver,
    caller_token,
    free_port,
    relay_env,
    school_document,
    stop,
    wait_until,
)

P0_TEXT = "孩子在学校发烧了"  # medical P0: the owner and the nurse at once
ROUTINE_TEXT = "请问下周几开家长会？"
PARENTS = 1500
# Every P0 escalates twice, 3 s apart: a P0 raised just before the kill has steps on both sides of it.
ESCALATING = {"P0": {"ack_within": "3s", "escalation": [{"after": "3s", "notify": ["role:duty_leader"]},
                                                        {"after": "3s", "notify": ["role:principal"]}]}}


@dataclass
class Sent:
    """One parent's message and every attempt it took to get a 201."""

    number: int
    key: str
    p0: bool
    started: float  # monotonic, first attempt
    answered: float | None = None  # monotonic, the 201
    request_id: str | None = None
    statuses: list[int] = field(default_factory=list)  # 0: no answer (connection dropped)

    @property
    def guardian(self) -> str:
        return f"pg{self.number}"

    @property
    def student(self) -> str:
        return f"ps{self.number}"


def failover_school(school_id: str, receiver_url: str) -> dict[str, Any]:
    document = school_document(school_id, receiver_url, sla=ESCALATING)
    document["students"] += [
        {"id": f"ps{n}", "name": f"学生{n}", "class_id": "c1",
         "guardians": [{"id": f"pg{n}", "name": f"家长{n}", "phone": f"+86139{n:08d}"}]}
        for n in range(PARENTS)
    ]
    return document


class Parents(threading.Thread):
    """Parents submitting all along, `at_once` at a time, every third message an emergency, until stopped."""

    def __init__(self, url: str, school_id: str, at_once: int = 4, pause: float = 0.1) -> None:
        super().__init__(name="parents", daemon=True)
        self.url = url
        self.school_id = school_id
        self.at_once = at_once
        self.pause = pause  # pacing: a steady stream, not a load test
        self.sent: list[Sent] = []
        self.stopping = threading.Event()
        self.progress = threading.Condition()
        self._numbers = iter(range(PARENTS))

    def run(self) -> None:
        writers = [threading.Thread(target=self._write, name=f"parent-{n}", daemon=True) for n in range(self.at_once)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()

    def _write(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stopping.is_set():
                with self.progress:
                    number = next(self._numbers, None)
                if number is None:
                    return
                self.send(client, Sent(number, uuid.uuid4().hex, p0=number % 3 == 0, started=time.monotonic()))
                self.stopping.wait(self.pause)

    def send(self, client: httpx.Client, one: Sent) -> None:
        headers = {"Authorization": f"Bearer {caller_token('parent', one.guardian, self.school_id)}",
                   "Idempotency-Key": one.key}
        body = {"student_id": one.student, "text": P0_TEXT if one.p0 else ROUTINE_TEXT}
        with self.progress:
            self.sent.append(one)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = client.post("/v1/requests", json=body, headers=headers)
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            one.statuses.append(status)
            if status == 201:
                one.answered = time.monotonic()
                one.request_id = answer.json()["id"]
                with self.progress:
                    self.progress.notify_all()
                return
            if status not in (0, 503):
                raise AssertionError(f"parent {one.number}: unexpected {status}: {answer.text}")
            time.sleep(0.05)  # a client's retry pause (the 503 says Retry-After: 1; a parent's app is quicker)
        raise AssertionError(f"parent {one.number} never got a 201: {one.statuses}")

    def stored(self, since: float = 0.0) -> list[Sent]:
        """Messages first sent at or after `since` that got their 201."""
        with self.progress:
            return [s for s in self.sent if s.answered is not None and s.started >= since]

    def wait_stored(self, count: int, since: float = 0.0, timeout: float = 30) -> None:
        wait_until(lambda: len(self.stored(since)) >= count, timeout, f"{count} requests stored", interval=0.02)

    def finish(self) -> None:
        self.stopping.set()
        self.join(timeout=90)
        assert not self.is_alive(), "the parents did not finish their retries"


@dataclass
class Failover:
    """What happened, for the test to check and the bench to print."""

    group: RedisGroup
    stack: Stack
    school_id: str
    parents: Parents
    killed_at: float = 0.0
    old: Server | None = None
    new: Server | None = None
    switched_at: float = 0.0  # when the sentinels named the new master
    escalating: str = ""  # an unacknowledged P0 raised before the kill

    @property
    def gap_seconds(self) -> float:
        """From the master's death to the first 201 of a message first sent after it."""
        after = self.parents.stored(self.killed_at)
        assert after, "no request was stored after the failover"
        return min(s.answered or 0.0 for s in after) - self.killed_at

    def lost(self) -> list[Sent]:
        """Messages that got a 201 and cannot be read back through the API now."""
        client = self.stack_client()
        missing = []
        for one in self.parents.stored():
            headers = {"Authorization": f"Bearer {caller_token('parent', one.guardian, self.school_id)}"}
            if client.get(f"/v1/requests/{one.request_id}", headers=headers).status_code != 200:
                missing.append(one)
        return missing

    def stack_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url, timeout=5)


@contextmanager
def failover_stack(base: Path, receiver: WebhookReceiver, **env: str) -> Iterator[Failover]:
    """The group, `relay serve` and two `relay worker` through Sentinel, a school with PARENTS parents."""
    group = RedisGroup(base / "redis").start()
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = base / "school.yaml"
    config.write_text(yaml.safe_dump({"schools": [failover_school(school_id, receiver.url)]}, allow_unicode=True),
                      encoding="utf-8")
    url = f"redis://127.0.0.1:{group.servers[0].port}/0"  # the sentinels name the master; this gives the database
    settings = {"RELAY_REDIS_SENTINELS": group.sentinel_list, "RELAY_REDIS_SENTINEL_MASTER": MASTER_NAME,
                "RELAY_INTAKE_MIN_REPLICAS": "1", "RELAY_INTAKE_REPLICA_TIMEOUT_MS": "500"}
    stack = Stack(url, relay_env(url, config, f"http://127.0.0.1:{free_port()}") | NO_LIMITS | settings | env, base,
                  connection=connect(url, group.sentinel_list, MASTER_NAME))
    parents: Parents | None = None
    try:
        stack.start_api()
        stack.ensure_workers(2)
        parents = Parents(stack.url, school_id)
        yield Failover(group, stack, school_id, parents)
    finally:
        if parents is not None and parents.is_alive():
            parents.stopping.set()
            parents.join(timeout=90)
        for process in stack.workers + ([stack.api] if stack.api else []):
            stop(process)
        group.stop()


def kill_master_during_intake(run: Failover, receiver: WebhookReceiver) -> None:
    """Parents submit; an unacknowledged P0 escalates once; SIGKILL to the master; the killed node comes back as
    a supervisor restarts it (as a replica of the new master); parents go on until the new master stored more."""
    parents = run.parents
    parents.start()
    parents.wait_stored(20)
    client = run.stack_client()
    headers = {"Authorization": f"Bearer {caller_token('parent', 'g2', run.school_id)}", "Idempotency-Key": "esc"}
    answer = client.post("/v1/requests", json={"student_id": "s3", "text": P0_TEXT}, headers=headers)
    assert answer.status_code == 201, answer.text
    run.escalating = answer.json()["id"]
    receiver.wait_for(escalation_to(run, "duty"), 15, "the first escalation step before the kill")

    run.old = run.group.master()
    run.killed_at = time.monotonic()
    run.old.kill9()
    run.new = run.group.wait_failover(run.old)
    run.switched_at = time.monotonic()
    run.old.restart_as_replica_of(run.new)
    parents.wait_stored(30, since=run.killed_at, timeout=30)
    receiver.wait_for(escalation_to(run, "principal"), 15, "the second escalation step, after the failover")
    parents.finish()


def escalation_to(run: Failover, staff_id: str) -> Any:
    def match(post: Post) -> bool:
        document = post.json()
        return (post.path == f"/{run.school_id}/{staff_id}" and document.get("event") == "request.escalated"
                and document["request"].get("id") == run.escalating)

    return match


def nurse_paged(run: Failover, receiver: WebhookReceiver) -> set[str]:
    return {p.json()["request"].get("id") for p in receiver.received(lambda p: p.path == f"/{run.school_id}/nurse")}
