"""Schools sharded across two Redis servers (issue 16, item 3), with real processes only.

Two private redis-server processes, `relay serve` and one `relay worker --shard NAME` per shard: each
school's requests, timers and deliveries stay on its own Redis, and a worker of one shard never
touches the other (south's emergency waits in south's queue until south's worker runs). REDIS_URL
names a port nobody listens on: a sharded process must never fall back to it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from rq import Queue, Worker
from support.spine import (
    QUEUE_PREFIX,
    RELAY,
    ROOT,
    WebhookReceiver,
    caller_token,
    free_port,
    log_tail,
    relay_env,
    school_document,
    staff_page_session,
    start_api,
    stop,
    wait_until,
)

from relay.cli.embedded import EmbeddedRedis

FEVER = "孩子在学校发烧了"  # P0 medical: the owner and the nurse at once
# One escalation a second after intake: proof that a shard's timer loop runs.
ONE_STEP = {"P0": {"ack_within": "1s", "escalation": [{"after": "1s", "notify": ["role:duty_leader"]}]}}


def write_sharded_yaml(path: Path, shards: list[dict[str, Any]], schools: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"shards": shards, "schools": schools}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


class Sharded:
    def __init__(self, base: Path, receiver: WebhookReceiver, north: EmbeddedRedis, south: EmbeddedRedis) -> None:
        tag = uuid.uuid4().hex[:6]
        self.north_school, self.south_school = f"n-{tag}", f"s-{tag}"
        self.redis = {"north": redis.Redis.from_url(north.url), "south": redis.Redis.from_url(south.url)}
        self.config = write_sharded_yaml(base / "district.yaml", [
            {"name": "north", "redis_url": north.url, "schools": [self.north_school]},
            {"name": "south", "redis_url": south.url, "schools": [self.south_school]},
        ], [school_document(self.north_school, receiver.url, sla=ONE_STEP),
            school_document(self.south_school, receiver.url, sla=ONE_STEP)])
        self.env = relay_env(f"redis://127.0.0.1:{free_port()}/0", self.config, f"http://127.0.0.1:{free_port()}")
        self.base = base
        self.api: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start_api(self) -> None:
        self.api, self.url = start_api(self.env, self.base, port=int(self.env["RELAY_PUBLIC_URL"].rsplit(":", 1)[1]))

    def emergency_queue(self, shard: str) -> Queue:
        return Queue(f"{QUEUE_PREFIX}-emergency", connection=self.redis[shard])

    def start_worker(self, shard: str) -> subprocess.Popen[bytes]:
        log = self.base / f"worker-{shard}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([RELAY, "worker", "--shard", shard], env=self.env, cwd=ROOT, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[shard] = process

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"relay worker --shard {shard} exited ({process.returncode}):\n{log_tail(log)}")
            return any(w.name.endswith(f"-{process.pid}")
                       for w in Worker.all(connection=self.redis[shard], queue=self.emergency_queue(shard)))

        wait_until(registered, 30, f"the {shard} worker to register", interval=0.05)
        return process

    def close(self) -> None:
        for process in [*self.workers.values(), *([self.api] if self.api else [])]:
            stop(process)


@pytest.fixture(scope="module")
def sharded(receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    base = tmp_path_factory.mktemp("shards")
    north = EmbeddedRedis(base / "north").start()
    south = EmbeddedRedis(base / "south").start()
    made = Sharded(base, receiver, north, south)
    try:
        made.start_api()
        made.start_worker("north")
        yield made
    finally:
        made.close()
        north.stop()
        south.stop()


def _submit(client: httpx.Client, school_id: str) -> str:
    token = caller_token("parent", "g1", school_id)
    response = client.post("/v1/requests", json={"student_id": "s1", "text": FEVER},
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _school_keys(connection: redis.Redis, school_id: str) -> list[str]:
    return sorted(k.decode() for k in connection.scan_iter(match=f"relay:{school_id}:*", count=1000))


def test_each_school_lives_on_its_own_shard(sharded: Sharded, receiver: WebhookReceiver) -> None:
    north, south = sharded.north_school, sharded.south_school
    with httpx.Client(base_url=sharded.url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["shards"] == {"north": "ok", "south": "ok"}
        scraped = client.get("/metrics").text  # each shard's gauges, told apart by a label
        assert f'relay_open_requests{{school="{north}",shard="north"}}' in scraped
        assert f'relay_open_requests{{school="{south}",shard="south"}}' in scraped

        north_id = _submit(client, north)
        south_id = _submit(client, south)  # south has no worker yet: its emergency waits in south's queue
        receiver.wait_for(lambda p: p.path == f"/{north}/nurse", what="north's nurse paged by north's worker")
        # North's escalation timer fires after south's request was stored: north's worker had every chance.
        receiver.wait_for(lambda p: p.path == f"/{north}/duty", what="north's escalation step")
        assert [p for p in receiver.received() if p.path.startswith(f"/{south}/")] == []
        assert sharded.emergency_queue("south").count >= 1
        assert sharded.emergency_queue("north").count == 0

        # Requests, timelines, timers and deliveries: each on its school's Redis, none on the other.
        north_keys = _school_keys(sharded.redis["north"], north)
        assert f"relay:{north}:request:{north_id}" in north_keys
        assert f"relay:{north}:timeline:{north_id}" in north_keys
        assert any(k.startswith(f"relay:{north}:delivery:{north_id}") for k in north_keys)
        assert _school_keys(sharded.redis["south"], north) == []
        south_keys = _school_keys(sharded.redis["south"], south)
        assert f"relay:{south}:request:{south_id}" in south_keys
        assert f"relay:{south}:timers" in south_keys
        assert _school_keys(sharded.redis["north"], south) == []
        # Each Redis has its own registry of schools.
        assert sharded.redis["north"].smembers("relay:schools") == {north.encode()}
        assert sharded.redis["south"].smembers("relay:schools") == {south.encode()}

        worker = sharded.start_worker("south")
        receiver.wait_for(lambda p: p.path == f"/{south}/nurse", what="south's nurse paged once south's worker runs")
        receiver.wait_for(lambda p: p.path == f"/{south}/duty", what="south's escalation step")
        assert any(k.startswith(f"relay:{south}:delivery:{south_id}") for k in _school_keys(sharded.redis["south"], south))
        assert _school_keys(sharded.redis["north"], south) == []
        # A worker registers, and takes jobs, only on its own shard's Redis.
        assert not any(w.name.endswith(f"-{worker.pid}") for w in Worker.all(connection=sharded.redis["north"]))

        # The API picks the shard by the caller's school for reading and for staff actions too.
        for school_id, request_id in ((north, north_id), (south, south_id)):
            parent = {"Authorization": f"Bearer {caller_token('parent', 'g1', school_id)}"}
            assert client.get(f"/v1/requests/{request_id}", headers=parent).json()["id"] == request_id
            assert client.get("/v1/queue", headers=staff_of(school_id)).status_code == 200
        acked = client.post(f"/v1/requests/{north_id}/ack", headers=staff_of(north))
        assert acked.status_code == 200, acked.text
        # A short acknowledgement link names no school: the shard that keeps its code answers it.
        nurse = receiver.wait_for(lambda p: p.path == f"/{south}/nurse", what="south's nurse")
        code = nurse.json()["request"]["ack_url"].rsplit("/a/", 1)[1]
        assert client.get(f"/a/{code}").status_code == 200
        assert client.post(f"/a/{code}").status_code == 200
        assert json.loads(sharded.redis["south"].get(f"relay:{south}:request:{south_id}"))["status"] == "acknowledged"
        # A token without its school finds the shard whose directory has the person.
        anonymous = {"Authorization": f"Bearer {caller_token('parent', 'g1', None)}"}
        mine = client.get("/v1/requests", headers=anonymous)
        assert mine.status_code == 200 and north_id in mine.text  # north is searched first and has g1

    # Staff pages: signed in by token, then by the session cookie, each on the school's own shard.
    with httpx.Client(base_url=sharded.url, timeout=10) as browser:
        signed_in = staff_page_session(browser, caller_token("staff", "aa", south))
        assert signed_in.status_code == 303, signed_in.text
        assert browser.cookies.get("relay_staff", "").startswith(f"{south}.")
        assert browser.get("/staff/queue.json").status_code == 200
        page = browser.get(f"/staff/requests/{south_id}")
        assert page.status_code == 200 and FEVER in page.text  # read from south's Redis
        assert any(":session:" in k for k in _school_keys(sharded.redis["south"], south))


def staff_of(school_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller_token('staff', 'nurse', school_id)}"}


def test_worker_and_config_check_refuse_a_bad_map(tmp_path: Path, receiver: WebhookReceiver) -> None:
    url = "redis://127.0.0.1:1/0"
    schools = [school_document("a-1", receiver.url), school_document("b-1", receiver.url)]

    def check(shards: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        path = write_sharded_yaml(tmp_path / f"{uuid.uuid4().hex}.yaml", shards, schools)
        return subprocess.run([RELAY, "config", "check", str(path)], capture_output=True, text=True, cwd=ROOT,
                              env=relay_env(url, path, "http://127.0.0.1:1"), timeout=60)

    on_none = check([{"name": "north", "redis_url": url, "schools": ["a-1"]}])
    assert on_none.returncode == 1 and "school 'b-1' is on no shard" in on_none.stdout
    on_two = check([{"name": "north", "redis_url": url, "schools": ["a-1", "b-1"]},
                    {"name": "south", "redis_url": url, "schools": ["b-1"]}])
    assert on_two.returncode == 1 and "school 'b-1' is on 2 shards (north, south)" in on_two.stdout
    good = check([{"name": "north", "redis_url": url, "schools": ["a-1"]},
                  {"name": "south", "redis_url": url, "schools": ["b-1"]}])
    assert good.returncode == 0, good.stdout + good.stderr
    assert "shards: north (1 schools), south (1 schools)" in good.stdout and "unknown key" not in good.stdout

    path = write_sharded_yaml(tmp_path / "district.yaml", [{"name": "north", "redis_url": url, "schools": ["a-1"]},
                                                           {"name": "south", "redis_url": url, "schools": ["b-1"]}],
                              schools)
    env = relay_env(url, path, "http://127.0.0.1:1")
    unknown = subprocess.run([RELAY, "worker", "--shard", "east"], capture_output=True, text=True, cwd=ROOT, env=env,
                             timeout=60)
    assert unknown.returncode == 2 and "no shard named 'east': the configuration has north, south" in unknown.stderr
    unnamed = subprocess.run([RELAY, "worker"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert unnamed.returncode == 2 and "start each worker with --shard NAME" in unnamed.stderr
