"""What one process shares: settings, the Redis connection, directories, queues, channels."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

import redis
from rq import Queue

from relay.base.directory import Directories
from relay.base.settings import Settings, get_settings
from routing.labels import Urgency

if TYPE_CHECKING:
    from relay.base.channels import Channels

# Workers take them in this order: an emergency never waits behind the morning's absences.
EMERGENCY, URGENT, ROUTINE = "emergency", "urgent", "routine"
QUEUES = (EMERGENCY, URGENT, ROUTINE)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def connect(url: str | None) -> redis.Redis:
    # Short timeouts: at intake a Redis outage must become a quick 503, not a hung parent.
    return redis.Redis.from_url(
        url or DEFAULT_REDIS_URL,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=30,
    )


class Runtime:
    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = connection or connect(settings.redis_url)
        self.directories = Directories(self.redis)
        self.queues = {
            name: Queue(f"{settings.queue_prefix}-{name}", connection=self.redis, default_timeout=60)
            for name in QUEUES
        }

    def queue_for(self, urgency: str) -> Queue:
        if urgency == Urgency.P0:
            return self.queues[EMERGENCY]
        return self.queues[URGENT if urgency == Urgency.P1 else ROUTINE]

    @cached_property
    def channels(self) -> Channels:
        from relay.base.channels import Channels

        return Channels(self.settings)


_runtime: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime
