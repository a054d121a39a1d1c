"""The real system for a replay: a private Redis, `relay serve` and `relay worker` processes.

Every process runs with RELAY_SIMULATED_CLOCK=1, so "now" is `relay:sim:clock`, which only
the replay moves. `drain` waits until the workers have done everything the current moment
calls for: the queues are empty and no job is running, no timer is due, no claimed timer
is still waiting for its job, and no notification is still on its way.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from rq import Queue, Worker

from relay.base import clock, keys, outbound
from relay.base.directory import ConfigError, publish
from relay.cli import embedded
from routing import learned
from routing.validation import check_config

QUEUE_PREFIX = "relay-replay"
DELIVERY_LEASE_SECONDS = 8.0
# A claimed timer sits at now + the claim's lease until its handler is done; `drain` finds the ones still
# running there. Replay instants fall on quarter seconds and timers are armed whole seconds after them, so
# with the default 15 s lease a timer merely due 15 s later (a fallback 90 s after an alert, when a message
# came 75 s after that alert) looked claimed, and drain waited on it until it gave up. 12.5 ms more
# puts every claim's mark where no armed timer falls.
TIMER_LEASE_SECONDS = 15.0125
CLAIM_LEASE_MS = int(TIMER_LEASE_SECONDS * 1000)  # as the scheduler computes it
STARTUP_SECONDS = 60.0


class StackError(RuntimeError):
    """A process of the replay did not start or stopped answering; its log says why."""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Stack:
    def __init__(self, workdir: Path, document: dict[str, Any], school_id: str, workers: int, start: float) -> None:
        self.workdir = workdir
        self.document = document
        self.school_id = school_id
        self.worker_count = workers
        self.start_clock = start
        self.secret_key = secrets.token_hex(32)
        self.webhook_secret = ""
        self.processes: list[subprocess.Popen[bytes]] = []
        self.redis_server: embedded.EmbeddedRedis | None = None
        self.url = ""
        self.drain_timeouts = 0

    # Starting and stopping ----------------------------------------------------------------------

    def start(self, webhook_secret: str) -> Stack:
        self.webhook_secret = webhook_secret
        self.redis_server = embedded.EmbeddedRedis(self.workdir / "redis", appendfsync="no").start()
        self.redis = redis.Redis.from_url(self.redis_server.url)
        self.redis.set(clock.SIM_KEY, repr(self.start_clock))
        directory, problems = check_config(self.document)
        if directory is None:
            raise ConfigError(problems)
        # Published once, here: the processes get no RELAY_CONFIG and read it from Redis (no YAML to parse).
        publish(self.redis, directory, allowed=outbound.parse_allowed(outbound.LOOPBACK))
        config = self.workdir / "school.yaml"  # what was replayed, for whoever reads the kept logs
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        config.write_text(yaml.dump(self.document, Dumper=dumper, allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
        port = embedded.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = self._env()
        self.queues = [Queue(f"{QUEUE_PREFIX}-{name}", connection=self.redis) for name in ("emergency", "urgent", "routine")]
        self._spawn("api", ["serve", "--host", "127.0.0.1", "--port", str(port)])
        for n in range(self.worker_count):
            self._spawn(f"worker-{n}", ["worker"])
        self._wait_ready()
        return self

    def _env(self) -> dict[str, str]:
        assert self.redis_server is not None
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RELAY_") and k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
        env.update(
            REDIS_URL=self.redis_server.url, RELAY_SIMULATED_CLOCK="1",
            RELAY_SECRET_KEY=self.secret_key, RELAY_WEBHOOK_SECRET=self.webhook_secret,
            RELAY_QUEUE_PREFIX=QUEUE_PREFIX, RELAY_PUBLIC_URL=self.url, RELAY_LOG_LEVEL="warning",
            RELAY_TIMER_POLL_SECONDS="0.005", RELAY_DELIVERY_LEASE_SECONDS=str(DELIVERY_LEASE_SECONDS),
            RELAY_TIMER_LEASE_SECONDS=str(TIMER_LEASE_SECONDS),
            # The week's parents write from many phones; here they all post from 127.0.0.1, minutes apart.
            RELAY_RATE_LIMIT_IP="1000000/minute", PYTHONUNBUFFERED="1",
            # The staff's phones are a receiver on this machine (relay/cli/replay/receiver.py).
            RELAY_WEBHOOK_ALLOW_PRIVATE=outbound.LOOPBACK,
        )
        # The one setting of the caller's kept: a replay of held-out writers classifies with a model that
        # never read them (`make replay-heldout`).
        if os.environ.get(learned.MODEL_ENV):
            env[learned.MODEL_ENV] = str(learned.model_path().resolve())
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "wb") as out:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "relay.cli.main", *args], env=self.env,
                                                   stdout=out, stderr=subprocess.STDOUT))

    def _check_alive(self) -> None:
        for process, name in zip(self.processes, self._names(), strict=True):
            if process.poll() is not None:
                raise StackError(f"{name} exited ({process.returncode}):\n{_tail(self.workdir / f'{name}.log')}")

    def _names(self) -> list[str]:
        return ["api"] + [f"worker-{n}" for n in range(len(self.processes) - 1)]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                api_up = httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                api_up = False
            workers = Worker.all(connection=self.redis, queue=self.queues[0])
            if api_up and len(workers) >= self.worker_count:
                return
            time.sleep(0.05)
        raise StackError("the replay's API and workers did not start in time")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None

    # The clock ------------------------------------------------------------------------------------

    def now(self) -> float:
        return float(self.redis.get(clock.SIM_KEY) or self.start_clock)

    def advance(self, moment: float) -> None:
        self.redis.set(clock.SIM_KEY, repr(moment))
        self.drain(moment)

    def next_timer(self) -> float | None:
        first = self.redis.zrange(keys.timers(self.school_id), 0, 0, withscores=True)
        return float(first[0][1]) / 1000 if first else None

    def _busy(self, moment: float) -> bool:
        now_ms = int(moment * 1000)
        timers = keys.timers(self.school_id)
        pipe = self.redis.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue.key)
            pipe.zcard(queue.started_job_registry.key)
        pipe.zcount(timers, "-inf", now_ms)  # due, not claimed yet
        pipe.zcount(timers, now_ms + CLAIM_LEASE_MS, now_ms + CLAIM_LEASE_MS)  # claimed, its job not done
        pipe.zrangebyscore(timers, f"({now_ms}", now_ms + int(DELIVERY_LEASE_SECONDS * 1000) + 1)
        *counts, soon = pipe.execute()
        # A delivery's watchdog stays armed until the delivery is final: a notification still on its way.
        sending = any(t.startswith(b"deliver|") for t in soon)
        return any(counts) or sending

    def drain(self, moment: float, timeout: float = 30.0) -> None:
        """Return once the system has caught up with `moment` (twice quiet in a row: a job just
        popped from a queue shows in the running registry a moment later)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            if self._busy(moment):
                quiet = 0
                if time.monotonic() > deadline:
                    self._check_alive()
                    self.drain_timeouts += 1
                    return
                time.sleep(0.001)
            else:
                quiet += 1
                time.sleep(0.003)
