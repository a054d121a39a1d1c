"""Sentinel and WAIT at intake, short of a failover (tests/test_failover.py has that): a request the replica
did not confirm, /readyz while no master is known, and what `relay serve|worker|dev` say about bad settings.
Real redis-server processes: a master, a replica and three sentinels (tests/support/sentinel.py)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.sentinel import MASTER_NAME, RedisGroup
from support.spine import (
    NO_LIMITS,
    RELAY,
    ROOT,
    Stack,
    WebhookReceiver,
    caller_token,
    free_port,
    relay_env,
    request_keys,
    staff_page_session,
    stop,
    wait_until,
    write_school_yaml,
)

from relay.base.runtime import connect
from relay.base.sentinels import parse

ROUTINE = "请问下周几开家长会？"


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisGroup]:
    made = RedisGroup(tmp_path_factory.mktemp("sentinel") / "redis").start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def waiting(group: RedisGroup, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Stack, str]]:
    """`relay serve` through the sentinels with RELAY_INTAKE_MIN_REPLICAS=1 (no workers: nothing here needs one)."""
    base = tmp_path_factory.mktemp("waiting")
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(base / "school.yaml", school_id, receiver.url)
    url = f"redis://127.0.0.1:{group.servers[0].port}/0"
    env = relay_env(url, config, f"http://127.0.0.1:{free_port()}") | NO_LIMITS | {
        "RELAY_REDIS_SENTINELS": group.sentinel_list, "RELAY_INTAKE_MIN_REPLICAS": "1",
        "RELAY_INTAKE_REPLICA_TIMEOUT_MS": "300"}
    stack = Stack(url, env, base, connection=connect(url, group.sentinel_list, MASTER_NAME))
    try:
        stack.start_api()
        yield stack, school_id
    finally:
        if stack.api is not None:
            stop(stack.api)


def post(stack: Stack, school_id: str, key: str, guardian: str = "g2", student: str = "s3") -> httpx.Response:
    headers = {"Authorization": f"Bearer {caller_token('parent', guardian, school_id)}", "Idempotency-Key": key}
    return httpx.post(f"{stack.url}/v1/requests", json={"student_id": student, "text": ROUTINE}, headers=headers,
                      timeout=5)


def test_a_request_no_replica_confirmed_is_a_503_and_the_retry_returns_it_once_one_does(
    group: RedisGroup, waiting: tuple[Stack, str],
) -> None:
    stack, school_id = waiting
    replica = group.servers[1]
    replica.kill9()
    key = uuid.uuid4().hex

    first = post(stack, school_id, key)
    assert first.status_code == 503, first.text
    assert first.json()["error"]["code"] == "store_unavailable" and "Idempotency-Key" in first.json()["error"]["message"]
    stored = request_keys(stack.redis, school_id)
    assert len(stored) == 1  # on the master, unconfirmed

    again = post(stack, school_id, key)  # the retry waits for the replica again: still none
    assert again.status_code == 503 and request_keys(stack.redis, school_id) == stored

    replica.start()
    wait_until(lambda: group.link_up(replica), 15, "the replica to sync again")
    retried = post(stack, school_id, key)
    assert retried.status_code == 201, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert stored == [f"relay:{school_id}:request:{retried.json()['id']}"]  # the stored one, not a second
    assert post(stack, school_id, uuid.uuid4().hex, "g1", "s1").status_code == 201


def test_readyz_names_the_master_and_is_503_while_no_sentinel_names_one(
    group: RedisGroup, waiting: tuple[Stack, str],
) -> None:
    stack, _ = waiting
    ready = httpx.get(f"{stack.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["master"] == f"127.0.0.1:{group.master().port}"

    for sentinel in group.sentinels:
        sentinel.stop()
    try:
        down = httpx.get(f"{stack.url}/readyz", timeout=5)
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "redis": "MasterNotFoundError", "master": None}
    finally:
        for sentinel in group.sentinels:
            sentinel.start()
    wait_until(lambda: httpx.get(f"{stack.url}/readyz", timeout=5).status_code == 200, 15, "ready again")



def test_the_staff_pages_live_events_come_from_the_master_the_sentinels_name(waiting: tuple[Stack, str]) -> None:
    stack, school_id = waiting
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        signed_in = staff_page_session(client, caller_token("staff", "aa", school_id))
        assert signed_in.status_code == 303, signed_in.text
        with client.stream("GET", "/staff/events") as events:
            lines = events.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: ready"
            created = post(stack, school_id, uuid.uuid4().hex, "g1", "s2")
            assert created.status_code == 201, created.text
            assert next(line for line in lines if line.startswith("event:")) == "event: change"
            assert created.json()["id"] in next(line for line in lines if line.startswith("data:"))

# Bad settings ------------------------------------------------------------------------------------------


def run_relay(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELAY, *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"], ["dev", "--port", "0"]], ids=" ".join)
def test_no_reachable_sentinel_is_named_and_the_process_exits(command: list[str], tmp_path: Path) -> None:
    nobody = free_port()
    env = relay_env("redis://127.0.0.1:6379/0", write_school_yaml(tmp_path / "s.yaml", "t-x", "http://127.0.0.1:9"),
                    "http://127.0.0.1:8000") | {"RELAY_REDIS_SENTINELS": f"127.0.0.1:{nobody}"}
    done = run_relay(command, env)
    assert done.returncode == 1, done.stderr
    assert f"no sentinel in RELAY_REDIS_SENTINELS (127.0.0.1:{nobody}) answers" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]], ids=" ".join)
def test_an_unknown_master_name_is_named_with_the_ones_the_sentinels_know(
    command: list[str], group: RedisGroup, tmp_path: Path,
) -> None:
    env = relay_env("redis://127.0.0.1:6379/0", write_school_yaml(tmp_path / "s.yaml", "t-x", "http://127.0.0.1:9"),
                    "http://127.0.0.1:8000") | {"RELAY_REDIS_SENTINELS": group.sentinel_list,
                                                "RELAY_REDIS_SENTINEL_MASTER": "relay-typo"}
    done = run_relay(command, env)
    assert done.returncode == 1, done.stderr
    assert "monitors a master named 'relay-typo' (RELAY_REDIS_SENTINEL_MASTER); they monitor: relay" in done.stderr


def test_a_malformed_sentinel_list_stops_the_process_naming_the_entry(tmp_path: Path) -> None:
    env = relay_env("redis://127.0.0.1:6379/0", tmp_path / "none.yaml", "http://127.0.0.1:8000") | {
        "RELAY_REDIS_SENTINELS": "10.0.0.5:26379,sentinel-b"}
    done = run_relay(["serve", "--port", "0"], env)
    assert done.returncode == 2
    assert "'sentinel-b' is not host:port" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("written,parsed", [
    ("a:26379, b:26380 ,", [("a", 26379), ("b", 26380)]),
    ("[::1]:26379", [("::1", 26379)]),
    ("", []),
])
def test_the_sentinel_list_is_host_port_pairs(written: str, parsed: list[tuple[str, int]]) -> None:
    assert parse(written) == parsed


@pytest.mark.parametrize("written", ["a", "a:", ":26379", "a:port", "a:70000"])
def test_a_sentinel_that_is_not_host_port_is_refused(written: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        parse(written)
