"""Dead letters against a real Redis: list, show, redrive and drop, in-process and through `relay deadletters`,
and a redriven notification arriving at a local receiver, from a real worker, with its original event id."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from support.ops import drop_queues, ops_env, queues, start_worker
from support.spine import (
    RELAY,
    ROOT,
    WebhookReceiver,
    caller_token,
    delete_school_keys,
    free_port,
    start_api,
    stop,
    wait_until,
    write_school_yaml,
)

from relay.base.runtime import Runtime
from relay.base.settings import Settings
from relay.core import deadletters

FEVER = "孩子在学校发烧了"  # P0 medical: the owner (aa) and the nurse are told at once


def letter_key(school_id: str) -> str:
    return f"relay:{school_id}:deadletters"


def failed_delivery(school_id: str, event_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """A delivery record as relay.core.jobs._finish leaves it in the list."""
    request_id = "r" + uuid.uuid4().hex
    delivery = {
        "event_id": event_id or f"{request_id}.urgent.0.aa", "school_id": school_id, "request_id": request_id,
        "staff_id": "aa", "why": "owner", "event": "request.urgent", "urgency": "P0", "contact_index": 1,
        "attempt": 3, "state": "failed", "created_at": 1767225600.0,
    }
    delivery.update(changes)
    return delivery


@dataclass
class Place:
    """A school id of this test's own and queues no worker listens to."""

    school_id: str
    connection: redis.Redis
    runtime: Runtime
    env: dict[str, str]

    def bury(self, delivery: dict[str, Any]) -> None:
        raw = json.dumps(delivery)
        self.connection.set(f"relay:{self.school_id}:delivery:{delivery['event_id']}", raw)
        self.connection.lpush(letter_key(self.school_id), raw)

    def letters(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.connection.lrange(letter_key(self.school_id), 0, -1)]

    def relay(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RELAY, "deadletters", *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)


@pytest.fixture
def place(redis_url: str, tmp_path: Path) -> Iterator[Place]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(redis_url)
    env = ops_env(redis_url, tmp_path / "unused.yaml", "http://127.0.0.1:9")
    runtime = Runtime(Settings(queue_prefix=env["RELAY_QUEUE_PREFIX"]), connection=connection)
    yield Place(school_id, connection, runtime, env)
    delete_school_keys(connection, [school_id])
    drop_queues(connection, env)


def test_redrive_resets_the_record_keeps_the_event_id_and_enqueues_one_delivery(place: Place) -> None:
    first, other = failed_delivery(place.school_id), failed_delivery(place.school_id, urgency="P2")
    place.bury(other)
    place.bury(first)

    again = deadletters.redrive(place.runtime, place.school_id, first["event_id"])

    assert again is not None
    stored = json.loads(place.connection.get(f"relay:{place.school_id}:delivery:{first['event_id']}") or b"{}")
    for record in (again, stored):
        assert record["event_id"] == first["event_id"]
        assert (record["state"], record["attempt"], record["contact_index"], record["redrives"]) == ("pending", 0, 0, 1)
        assert record["request_id"] == first["request_id"] and record["staff_id"] == "aa"
    assert [d["event_id"] for d in place.letters()] == [other["event_id"]]
    emergency, urgent, routine = queues(place.connection, place.env)  # the letter is a P0's: the emergency queue
    jobs = [emergency.fetch_job(job_id) for job_id in emergency.job_ids]
    assert [(j.func_name, tuple(j.args)) for j in jobs if j] == [("relay.core.jobs.deliver", (place.school_id, first["event_id"]))]
    assert urgent.count == 0 and routine.count == 0
    # The watchdog is armed, as at intake: a worker dying with it does not lose it again.
    assert place.connection.zscore(f"relay:{place.school_id}:timers", f"deliver|{first['event_id']}") is not None
    assert deadletters.redrive(place.runtime, place.school_id, first["event_id"]) is None


def test_a_letter_pushed_twice_is_redriven_once(place: Place) -> None:
    letter = failed_delivery(place.school_id)
    place.bury(letter)
    place.bury(letter)

    assert deadletters.redrive(place.runtime, place.school_id, letter["event_id"]) is not None

    assert place.letters() == []
    assert sum(q.count for q in queues(place.connection, place.env)) == 1


def test_drop_forgets_the_letter_and_keeps_the_failed_record(place: Place) -> None:
    letter = failed_delivery(place.school_id)
    place.bury(letter)

    assert deadletters.drop(place.connection, place.school_id, letter["event_id"]) is not None

    assert place.letters() == []
    stored = json.loads(place.connection.get(f"relay:{place.school_id}:delivery:{letter['event_id']}") or b"{}")
    assert stored["state"] == "failed"
    assert sum(q.count for q in queues(place.connection, place.env)) == 0
    assert deadletters.drop(place.connection, place.school_id, letter["event_id"]) is None


def test_the_command_lists_shows_and_drops_all(place: Place) -> None:
    older, newer = failed_delivery(place.school_id), failed_delivery(place.school_id, urgency="P1")
    place.bury(older)
    place.bury(newer)

    listed = place.relay("list", "--school", place.school_id)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["event_id"] for r in rows] == [newer["event_id"], older["event_id"]]
    assert set(rows[0]) == {"school_id", "event_id", "request_id", "staff_id", "event", "urgency", "attempt",
                            "contact_index", "redrives"}

    place.connection.sadd("relay:schools", place.school_id)  # as if published: searched without --school
    shown = place.relay("show", older["event_id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["delivery"] == older

    dropped = place.relay("drop", "--all", "--school", place.school_id)
    assert dropped.returncode == 0, dropped.stderr
    assert {json.loads(line)["event_id"] for line in dropped.stdout.splitlines()} == {older["event_id"], newer["event_id"]}
    assert place.letters() == []


def test_the_command_says_what_is_missing(place: Place) -> None:
    assert place.relay("show").returncode == 2
    assert place.relay("redrive").returncode == 2
    assert place.relay("drop", "some-event", "--all").returncode == 2
    missing = place.relay("redrive", "--school", place.school_id, "no-such-event")
    assert missing.returncode == 1 and "no dead letter no-such-event" in missing.stderr


def test_a_redriven_dead_letter_arrives_with_its_original_event_id(
    redis_url: str, private_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, private_receiver.url)
    port = free_port()
    env = ops_env(redis_url, config, f"http://127.0.0.1:{port}")
    connection = redis.Redis.from_url(redis_url)
    owner = f"/{school_id}/aa"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        api, url = start_api(env, tmp_path, port=port)
        processes += [api, start_worker(connection, env, tmp_path)]
        private_receiver.answer(owner, 410)  # the owner's only contact refuses for good

        token = caller_token("parent", "g1", school_id)
        response = httpx.post(f"{url}/v1/requests", json={"student_id": "s1", "text": FEVER}, timeout=10,
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == 201, response.text
        request_id = response.json()["id"]

        def buried() -> list[dict[str, Any]]:
            return [json.loads(raw) for raw in connection.lrange(letter_key(school_id), 0, -1)]

        (letter,) = wait_until(buried, 15, "the owner's notification to become a dead letter")
        event_id = letter["event_id"]
        assert (letter["staff_id"], letter["request_id"], letter["state"]) == ("aa", request_id, "failed")
        assert [p.status for p in private_receiver.received(lambda p: p.path == owner)] == [410]

        # The cause is fixed (the receiver answers 200 again); the operator redrives.
        done = subprocess.run([RELAY, "deadletters", "redrive", "--school", school_id, event_id], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"school_id": school_id, "event_id": event_id, "result": "redriven"}

        arrived = private_receiver.wait_for(lambda p: p.path == owner and p.status == 200, 15, "the redriven POST")
        assert arrived.event_id == event_id
        assert arrived.json()["attempt"] == 1 and arrived.json()["request"]["id"] == request_id
        assert buried() == []

        def history() -> list[str]:
            timeline = [json.loads(e) for e in connection.lrange(f"relay:{school_id}:timeline:{request_id}", 0, -1)]
            return [e["kind"] for e in timeline if e.get("event_id") == event_id]

        wait_until(lambda: history()[-1:] == ["delivered"], 10, "the redriven delivery to be recorded")
        assert history()[-3:] == ["delivery_failed", "delivery_redriven", "delivered"]
        record = json.loads(connection.get(f"relay:{school_id}:delivery:{event_id}") or b"{}")
        assert (record["state"], record["redrives"]) == ("delivered", 1)
    finally:
        for process in processes:
            stop(process)
        delete_school_keys(connection, [school_id])
        drop_queues(connection, env)
