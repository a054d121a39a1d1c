"""Intake in two round trips (issue #19, item 5), and what must still hold at that speed: one request per
Idempotency-Key however many retries race, the jobs RQ itself would write, routine messages shed past
saturation while an emergency is admitted, and /metrics that counts every process of `relay serve --workers`."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from redis.connection import Connection
from rq import Queue
from rq.job import Job
from support.spine import (
    School,
    WebhookReceiver,
    caller_token,
    delete_school_keys,
    free_port,
    relay_env,
    request_keys,
    start_api,
    stop,
    wait_until,
    write_school_yaml,
)
from test_metrics import parse, value
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from relay.api.shedding import InFlight
from relay.base.directory import load_yaml, publish
from relay.base.runtime import Runtime
from relay.base.settings import Settings
from relay.cli.serving import NoDelayHttpTools
from relay.core import enqueue
from relay.core.intake import Limits, Outcome, Submission, submit
from relay.core.ratelimit import Limit

ROUTINE = "请问下周几开家长会？"
EMERGENCY = "孩子在学校摔伤了，头在流血"


class CountingConnection(Connection):
    """A redis-py connection that counts what it sends: one send is one round trip (a pipeline is one)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def counted(redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(redis_url, connection_class=CountingConnection)
    publish(connection, load_yaml(write_school_yaml(tmp_path / "school.yaml", school_id, receiver.url)))
    settings = Settings(redis_url=redis_url, queue_prefix="relayrt-" + uuid.uuid4().hex[:8], secret_key="k")
    runtime = Runtime(settings, connection)
    yield runtime, school_id
    delete_school_keys(connection, [school_id])
    for queue in runtime.queues.values():
        queue.delete(delete_jobs=True)


def test_a_new_request_costs_one_read_and_one_write_round_trip(counted: tuple[Runtime, str]) -> None:
    runtime, school_id = counted
    version, school = runtime.directories.school(school_id) or (0, None)
    assert school is not None
    student = school.student("s1")
    assert student is not None
    limits = Limits(soft=(Limit("30/minute;500/day", ("guardian", school_id, "g1")),
                          Limit("3000/minute", ("ip", "requests", "127.0.0.1"))))

    def submitted(text: str, key: str, student_id: str = "s1") -> tuple[Outcome, int]:
        before = CountingConnection.sent
        done = submit(runtime, school, version, school.student(student_id) or student,
                      Submission("g1", student_id, text, None, key), limits=limits)
        return done.outcome, CountingConnection.sent - before

    # Once per process and Redis: the scripts are loaded, RQ asks the server's version for each queue.
    for text in ("请问明天要带什么？", "孩子在学校晕倒了"):
        submitted(text, uuid.uuid4().hex, "s2")
    assert submitted(ROUTINE, uuid.uuid4().hex) == (Outcome.created, 2)
    key = uuid.uuid4().hex
    assert submitted(EMERGENCY, key) == (Outcome.created, 2)
    # A retry reads the key, then the request it names.
    assert submitted(EMERGENCY, key) == (Outcome.replayed, 2)


def test_racing_retries_with_one_key_store_one_request(school: School) -> None:
    """Threads against the real `relay serve`, released together: routine and emergency bodies alike."""
    for text in (ROUTINE, EMERGENCY):
        key = uuid.uuid4().hex
        start = threading.Barrier(12)

        def retry(_: int, text: str = text, key: str = key, start: threading.Barrier = start) -> httpx.Response:
            with httpx.Client(base_url=school.stack.url, timeout=10) as client:
                start.wait()
                return client.post("/v1/requests", json={"student_id": "s1", "text": text},
                                   headers=dict(school.parent("g1"), **{"Idempotency-Key": key}))

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(retry, range(12)))

        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("idempotent-replayed") != "true" for a in answers) == 1
        assert not any("relay-joined-request" in a.headers for a in answers)
    assert len(school.request_keys()) == 2
    assert school.stack.redis.zcard(f"relay:{school.id}:guardian:g1:requests") == 2


def test_racing_retries_with_one_key_and_other_bodies_store_only_the_first(school: School) -> None:
    key = uuid.uuid4().hex
    texts = [f"{ROUTINE} 第{n}次" for n in range(8)]
    start = threading.Barrier(len(texts))

    def send(text: str) -> httpx.Response:
        with httpx.Client(base_url=school.stack.url, timeout=10) as client:
            start.wait()
            return client.post("/v1/requests", json={"student_id": "s1", "text": text},
                               headers=dict(school.parent("g1"), **{"Idempotency-Key": key}))

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        answers = list(pool.map(send, texts))

    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a is not created[0]} == {"idempotency_key_reused"}
    [stored] = school.request_keys()
    assert json.loads(school.stack.redis.get(stored) or b"{}")["text"] == created[0].json()["text"]


def test_jobs_are_the_hash_rq_itself_writes(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("relayrt-" + uuid.uuid4().hex[:8], connection=connection, default_timeout=60)
    try:
        with connection.pipeline(transaction=False) as pipe:
            [theirs] = queue.enqueue_many([Queue.prepare_data("relay.core.jobs.deliver", args=("sch", "r1.urgent.0.aa"),
                                                              timeout=60, result_ttl=0, failure_ttl=86400)],
                                          pipeline=pipe)
            ours = enqueue.enqueue(pipe, queue, "relay.core.jobs.deliver", ("sch", "r1.urgent.0.aa"), timeout=60,
                                   result_ttl=0, failure_ttl=86400)
            pipe.execute()
        stamps = {b"created_at", b"enqueued_at"}
        theirs_hash, ours_hash = (connection.hgetall(Job.key_for(i)) for i in (theirs.id, ours))
        assert {k: v for k, v in ours_hash.items() if k not in stamps} == \
            {k: v for k, v in theirs_hash.items() if k not in stamps}
        assert stamps <= set(ours_hash)
        job = Job.fetch(ours, connection=connection)
        assert (job.func_name, job.args, job.origin, job.timeout, job.get_status()) == \
            ("relay.core.jobs.deliver", ("sch", "r1.urgent.0.aa"), queue.name, 60, "queued")
        assert queue.job_ids == [theirs.id, ours]
    finally:
        queue.delete(delete_jobs=True)


@pytest.fixture
def one_school(redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, receiver.url)
    yield school_id, config
    delete_school_keys(redis.Redis.from_url(redis_url), [school_id])


def _post(url: str, school_id: str, text: str, guardian: str = "g1", student: str = "s1") -> httpx.Response:
    headers = {"Authorization": f"Bearer {caller_token('parent', guardian, school_id)}",
               "Idempotency-Key": uuid.uuid4().hex}
    return httpx.post(f"{url}/v1/requests", json={"student_id": student, "text": text}, headers=headers, timeout=10)


def test_a_saturated_api_sheds_routine_messages_and_admits_an_emergency(
    redis_url: str, one_school: tuple[str, Path], tmp_path: Path
) -> None:
    school_id, config = one_school
    port = free_port()
    env = dict(relay_env(redis_url, config, f"http://127.0.0.1:{port}"), RELAY_INTAKE_MAX_IN_FLIGHT="1",
               RELAY_QUEUE_PREFIX="relayrt-" + uuid.uuid4().hex[:8])
    api, url = start_api(env, tmp_path, port=port)
    held = socket.create_connection(("127.0.0.1", port))
    try:
        # Saturation: one intake request in flight, its body half sent (RELAY_INTAKE_MAX_IN_FLIGHT=1).
        body = json.dumps({"student_id": "s3", "text": "请问周五几点放学？"}).encode()
        held.sendall((f"POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {caller_token('parent', 'g2', school_id)}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:10])
        def refused() -> httpx.Response | None:
            answer = _post(url, school_id, ROUTINE)
            return answer if answer.status_code == 503 else None

        shed = wait_until(refused, 10, "a routine message to be shed")
        assert shed is not None
        assert shed.json()["error"]["code"] == "overloaded" and shed.json()["error"]["message"]
        assert int(shed.headers["retry-after"]) >= 1
        before = request_keys(redis.Redis.from_url(redis_url), school_id)

        urgent = _post(url, school_id, EMERGENCY)
        marked = httpx.post(f"{url}/v1/requests", json={"student_id": "s2", "text": "作业本忘带了", "urgent": True},
                            headers={"Authorization": f"Bearer {caller_token('parent', 'g1', school_id)}"}, timeout=10)

        assert urgent.status_code == 201 and urgent.json()["urgency"] == "P0", urgent.text
        assert marked.status_code == 201 and marked.json()["urgency"] == "P0", marked.text
        assert _post(url, school_id, ROUTINE, "g2", "s3").status_code == 503
        stored = request_keys(redis.Redis.from_url(redis_url), school_id)
        assert len(stored) == len(before) + 2  # the two emergencies; nothing of the shed ones
        metrics = parse(httpx.get(f"{url}/metrics", timeout=10).text)[1]
        assert (value(metrics, "relay_intake_shed_total") or 0) >= 2

        # The held request completes; with nothing else in flight, routine intake is admitted again.
        held.sendall(body[10:])
        assert held.recv(65536).split(b" ", 2)[1] == b"201"
        assert _post(url, school_id, ROUTINE).status_code == 201
    finally:
        held.close()
        stop(api)
        for name in ("emergency", "urgent", "routine"):
            Queue(f"{env['RELAY_QUEUE_PREFIX']}-{name}", connection=redis.Redis.from_url(redis_url)).delete(True)


def test_serve_with_workers_counts_every_process_in_one_metrics_view(
    redis_url: str, one_school: tuple[str, Path], tmp_path: Path
) -> None:
    school_id, config = one_school
    port = free_port()
    env = dict(relay_env(redis_url, config, f"http://127.0.0.1:{port}"),
               RELAY_QUEUE_PREFIX="relayrt-" + uuid.uuid4().hex[:8])
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    api, url = start_api(env, tmp_path, port=port, options=("--workers", "2"))
    try:
        # New connections each time: the kernel hands them to either process.
        answers = [_post(url, school_id, f"{ROUTINE} {n}") for n in range(12)]
        assert {a.status_code for a in answers} == {201}
        for _ in range(10):
            samples = parse(httpx.get(f"{url}/metrics", timeout=10).text)[1]
            received = sum(v for (name, _), v in samples.items() if name == "relay_requests_received_total")
            assert received == 12
            assert value(samples, "relay_intake_seconds_count") == 12
            assert value(samples, "relay_redis_up") == 1
    finally:
        stop(api)
        for name in ("emergency", "urgent", "routine"):
            Queue(f"{env['RELAY_QUEUE_PREFIX']}-{name}", connection=redis.Redis.from_url(redis_url)).delete(True)


@pytest.mark.parametrize("protocol", [HttpToolsProtocol, NoDelayHttpTools])
def test_connections_to_a_socket_bound_as_uvicorn_workers_bind_it_get_tcp_nodelay(
        protocol: type[HttpToolsProtocol]) -> None:
    """uvicorn's workers share a socket made as socket.socket(family): protocol 0, so asyncio leaves Nagle on
    and every keep-alive answer waits ~40 ms for a delayed ACK. relay serve's protocol turns it off."""

    async def accept_one() -> int:
        listening = socket.socket(socket.AF_INET)  # as uvicorn's Config.bind_socket does
        listening.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app=create_app_for_test, log_level="warning")
        made: list[HttpToolsProtocol] = []

        def factory() -> HttpToolsProtocol:
            made.append(protocol(config=config, server_state=ServerState(), app_state={}))
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, sock=listening)
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not made or getattr(made[0], "transport", None) is None:
            await asyncio.sleep(0)
        nodelay: int = made[0].transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        return nodelay

    assert bool(asyncio.run(accept_one())) is (protocol is NoDelayHttpTools)


async def create_app_for_test(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test only connects")


def test_routine_messages_take_turns_and_an_emergency_does_not_wait_for_one() -> None:
    async def scenario() -> list[str]:
        gate = InFlight(limit=0)
        order: list[str] = []
        release = asyncio.Event()

        async def routine(name: str, hold: asyncio.Event | None = None) -> None:
            async with gate.routine_turn():
                order.append(name)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(routine("A", release))
        await asyncio.sleep(0)  # A holds the turn
        waiting = [asyncio.create_task(routine(name)) for name in ("B", "gone", "C")]
        await asyncio.sleep(0)
        waiting[1].cancel()  # a client that went away while waiting does not hold up the others
        order.append("P0")  # an emergency is stored without a turn, while A still holds it
        release.set()
        await asyncio.gather(first, waiting[0], waiting[2])
        async with asyncio.timeout(1):  # the turn is free again: no one is left holding it
            await routine("D")
        return order

    assert asyncio.run(scenario()) == ["A", "P0", "B", "C", "D"]
