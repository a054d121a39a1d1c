"""Helpers for the operations tests (dead letters, metrics): a `relay worker` subprocess on queues of its own.

Everything else (Redis, the webhook receiver, `relay serve`, school files) comes from support/spine.py.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import redis
from rq import Queue, Worker

from support.spine import RELAY, ROOT, log_tail, relay_env, wait_until


def ops_env(redis_url: str, config: Path, public_url: str, **extra: str) -> dict[str, str]:
    """conftest's environment with a queue prefix of this test's own: no other worker takes its jobs."""
    env = relay_env(redis_url, config, public_url)
    env["RELAY_QUEUE_PREFIX"] = "relayops-" + uuid.uuid4().hex[:8]
    env.update(extra)
    return env


def queues(connection: redis.Redis, env: dict[str, str]) -> list[Queue]:
    return [Queue(f"{env['RELAY_QUEUE_PREFIX']}-{name}", connection=connection) for name in ("emergency", "urgent", "routine")]


def start_worker(connection: redis.Redis, env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """`relay worker`; returns once it has registered on its urgent queue."""
    log = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([RELAY, "worker"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    urgent = queues(connection, env)[0]

    def registered() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"relay worker exited ({process.returncode}):\n{log_tail(log)}")
        return any(w.name.endswith(f"-{process.pid}") for w in Worker.all(connection=connection, queue=urgent))

    wait_until(registered, 30, "relay worker to register", interval=0.05)
    return process


def drop_queues(connection: redis.Redis, env: dict[str, str]) -> None:
    for queue in queues(connection, env):
        queue.delete(delete_jobs=True)
