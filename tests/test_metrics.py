"""/metrics: counters recorded in API and worker processes, added up through PROMETHEUS_MULTIPROC_DIR,
and gauges of what waits in Redis, read at scrape time; parsed as Prometheus parses them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from support.ops import drop_queues, ops_env, start_worker
from support.spine import (
    Post,
    WebhookReceiver,
    caller_token,
    delete_school_keys,
    free_port,
    start_api,
    stop,
    wait_until,
    write_school_yaml,
)

from relay.base import metrics
from relay.base.runtime import Runtime
from relay.base.settings import Settings

FEVER = "孩子在学校发烧了"  # P0 medical: the owner and the nurse are told at once

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> tuple[dict[str, str], Samples]:
    """Family name → type, and (sample name, labels) → value."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def posted_to(path: str) -> Callable[[Post], bool]:
    return lambda post: post.path == path


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def installed() -> Iterator[None]:
    before = metrics._state
    yield
    metrics._state = before


def test_state_gauges_are_read_from_redis_at_scrape_time(redis_url: str, installed: None) -> None:
    school_id = "t-" + uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(redis_url)
    runtime = Runtime(Settings(queue_prefix="relayops-" + uuid.uuid4().hex[:8]), connection=connection)
    now = time.time()
    try:
        connection.sadd("relay:schools", school_id)
        connection.zadd(f"relay:{school_id}:open", {"r-late": now - 60, "r-ok": now + 3600, "r-ok2": now + 7200})
        connection.lpush(f"relay:{school_id}:deadletters", json.dumps({"event_id": "e1"}))
        connection.zadd(f"relay:{school_id}:timers", {"escalate|r-late|1": int((now - 30) * 1000),
                                                       "escalate|r-ok|1": int((now + 600) * 1000)})
        runtime.queues["urgent"].enqueue("relay.core.jobs.deliver", school_id, "e-none")

        metrics.install_collectors(runtime)
        body, content_type = metrics.render()

        assert content_type.startswith("text/plain")
        types, samples = parse(body.decode())
        assert value(samples, "relay_redis_up") == 1
        assert value(samples, "relay_open_requests", school=school_id) == 3
        assert value(samples, "relay_overdue_requests", school=school_id) == 1
        assert value(samples, "relay_dead_letters_waiting", school=school_id) == 1
        assert value(samples, "relay_timers_pending", school=school_id) == 2
        assert value(samples, "relay_timers_past_due", school=school_id) == 1
        assert value(samples, "relay_queue_depth", queue="urgent") == 1
        assert value(samples, "relay_queue_depth", queue="routine") == 0
        assert value(samples, "relay_workers", queue="urgent") == 0
        assert {types[n] for n in ("relay_open_requests", "relay_queue_depth", "relay_redis_up")} == {"gauge"}
        # What happened, recorded in this process, is still there beside the gauges.
        assert types["relay_requests_received"] == "counter"
    finally:
        delete_school_keys(connection, [school_id])
        for queue in runtime.queues.values():
            queue.delete(delete_jobs=True)


def test_without_redis_the_scrape_says_so_and_still_answers(installed: None) -> None:
    gone = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    metrics.install_collectors(Runtime(Settings(), connection=gone))

    types, samples = parse(metrics.render()[0].decode())

    assert value(samples, "relay_redis_up") == 0
    assert "relay_open_requests" not in types
    assert "relay_first_delivery_seconds" in types


def test_api_and_worker_share_one_view_through_the_multiprocess_directory(
    redis_url: str, private_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, private_receiver.url)
    port, worker_port = free_port(), free_port()
    alive = tmp_path / "worker-alive"
    env = ops_env(redis_url, config, f"http://127.0.0.1:{port}", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    connection = redis.Redis.from_url(redis_url)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        api, url = start_api(env, tmp_path, port=port)
        processes.append(api)
        worker_env = dict(env, RELAY_METRICS_PORT=str(worker_port), RELAY_HEARTBEAT_FILE=str(alive))
        processes.append(start_worker(connection, worker_env, tmp_path))

        token = caller_token("parent", "g1", school_id)
        response = httpx.post(f"{url}/v1/requests", json={"student_id": "s1", "text": FEVER}, timeout=10,
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == 201, response.text
        request_id = response.json()["id"]
        for path in (f"/{school_id}/aa", f"/{school_id}/nurse"):
            private_receiver.wait_for(posted_to(path), 15, f"the POST to {path}")

        def scrape() -> Samples:
            answer = httpx.get(f"{url}/metrics", timeout=10)
            assert answer.status_code == 200
            return parse(answer.text)[1]

        def both_delivered() -> Samples:
            samples = scrape()
            delivered = value(samples, "relay_delivery_attempts_total", channel="webhook", result="delivered")
            return samples if (delivered or 0) >= 2 else {}

        # The worker counts a delivery after the receiver answered: poll until both are counted.
        samples = wait_until(both_delivered, 10, "the worker's deliveries in the API's /metrics")
        assert value(samples, "relay_requests_received_total", urgency="P0", category="medical") == 1
        assert (value(samples, "relay_first_delivery_seconds_count", urgency="P0") or 0) >= 1
        assert value(samples, "relay_redis_up") == 1
        assert value(samples, "relay_open_requests", school=school_id) == 1
        assert value(samples, "relay_overdue_requests", school=school_id) == 0
        assert value(samples, "relay_dead_letters_waiting", school=school_id) == 0
        assert (value(samples, "relay_timers_pending", school=school_id) or 0) >= 1  # the escalation timer
        assert value(samples, "relay_queue_depth", queue="urgent") is not None
        assert (value(samples, "relay_workers", queue="urgent") or 0) >= 1
        assert request_id

        # The worker serves the same counters itself (for a pod of its own), without the Redis gauges.
        own = parse(httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text)[1]
        assert (value(own, "relay_delivery_attempts_total", channel="webhook", result="delivered") or 0) >= 2
        assert value(own, "relay_redis_up") is None
        assert alive.exists() and time.time() - alive.stat().st_mtime < 30
    finally:
        for process in processes:
            stop(process)
        delete_school_keys(connection, [school_id])
        drop_queues(connection, env)


def test_with_a_metrics_token_the_api_serves_metrics_only_to_its_bearer(
        redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> None:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, receiver.url)
    token = "scrape-" + uuid.uuid4().hex
    env = ops_env(redis_url, config, f"http://127.0.0.1:{free_port()}", RELAY_METRICS_TOKEN=token)
    api, url = start_api(env, tmp_path)
    try:
        for authorization in (None, "Bearer wrong", token, f"Basic {token}"):
            refused = httpx.get(f"{url}/metrics", headers={"Authorization": authorization} if authorization else {})
            assert refused.status_code == 401, authorization
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200
        assert "relay_redis_up" in parse(scraped.text)[0]
    finally:
        stop(api)
        delete_school_keys(redis.Redis.from_url(redis_url), [school_id])
    assert "metrics_unprotected" not in (tmp_path / f"api-{url.rsplit(':', 1)[1]}.log").read_text()
