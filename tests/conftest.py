"""Fixtures for the spine's tests: a real Redis, `relay serve` and `relay worker` as real subprocesses,
and a local webhook receiver over a real socket. What they are built from lives in tests/support/spine.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.spine import (
    School,
    Schools,
    Stack,
    WebhookReceiver,
    free_port,
    lease_database,
    relay_env,
    write_school_yaml,
)

from relay.cli import embedded


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def private_receiver() -> Iterator[WebhookReceiver]:
    """A receiver of one's own, for tests that take it down."""
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for url in (os.environ.get("REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if url and embedded.reachable(url):
            lease = lease_database(url)
            if lease is None:
                break  # no database to ourselves: an embedded Redis rather than a shared timer space
            leased, release = lease
            try:
                yield leased
            finally:
                release()
            return
    server = embedded.EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def school_yaml() -> Callable[..., Path]:
    return write_school_yaml


@pytest.fixture(scope="session")
def stack(redis_url: str, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("relay")
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(base / "school.yaml", school_id, receiver.url)
    env = relay_env(redis_url, config, f"http://127.0.0.1:{free_port()}")
    running = Stack(redis_url, env, base)
    running.school_ids.append(school_id)
    try:
        running.start_api()
        running.ensure_workers(2)
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def schools(stack: Stack, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Schools]:
    made = Schools(stack, receiver, tmp_path_factory.mktemp("schools"))
    yield made
    made.client.close()


@pytest.fixture
def school(schools: Schools) -> School:
    return schools.new()
