"""What one process shares: settings, the Redis connection, directories, queues, channels."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.sentinel import Sentinel, SentinelConnectionPool
from rq import Queue

from relay.base.directory import Directories
from relay.base.sentinels import ASK_TIMEOUT_SECONDS, DEFAULT_MASTER, Address, once
from relay.base.sentinels import parse as sentinel_list
from relay.base.sentinels import text as sentinel_text
from relay.base.settings import Settings, get_settings
from routing.labels import Urgency

if TYPE_CHECKING:
    from relay.base.channels import Channels

# Workers take them in this order: an emergency never waits behind the morning's absences.
EMERGENCY, URGENT, ROUTINE = "emergency", "urgent", "routine"
QUEUES = (EMERGENCY, URGENT, ROUTINE)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def connect(url: str | None, sentinels: str | Sequence[Address] | None = None, master: str | None = None, *,
            socket_timeout: float | None = 2.0) -> redis.Redis:
    """A client of one Redis: `url` itself, or, with `sentinels`, the master they name `master` (the URL then gives
    only the password, user, database and TLS). A Sentinel client asks the sentinels for the master's address on
    every new connection and drops connections to a master that was demoted, so it follows a failover by itself.

    One call, one independent client: a shard map calls it once per entry. `socket_timeout=None` is for a
    connection that blocks (an RQ worker's BLPOP)."""
    # Short timeouts: at intake a Redis outage must become a quick 503, not a hung parent.
    options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": socket_timeout,
                               "health_check_interval": 30}
    addresses = sentinel_list(sentinels)
    if not addresses:
        return redis.Redis.from_url(url or DEFAULT_REDIS_URL, **options)
    manager = Sentinel(addresses, sentinel_kwargs=_sentinel_options(), **_credentials(url))
    return manager.master_for(master or DEFAULT_MASTER, **options)


def connect_async(url: str | None, sentinels: str | Sequence[Address] | None = None,
                  master: str | None = None) -> aioredis.Redis:
    """`connect` for asyncio code (the live pages' subscriptions): the same Redis, found the same way."""
    options: dict[str, Any] = {"socket_connect_timeout": 1.0}
    addresses = sentinel_list(sentinels)
    if not addresses:
        return aioredis.Redis.from_url(url or DEFAULT_REDIS_URL, **options)
    asking = _sentinel_options() | {"retry": AsyncRetry(NoBackoff(), 0)}
    manager = AsyncSentinel(addresses, sentinel_kwargs=asking, **_credentials(url))
    return manager.master_for(master or DEFAULT_MASTER, **options)


def connect_from(settings: Settings, *, socket_timeout: float | None = 2.0) -> redis.Redis:
    return connect(settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_master,
                   socket_timeout=socket_timeout)


def master_address(connection: redis.Redis) -> str:
    """Where `connection` writes now: the master the sentinels name (asked afresh), or the URL's host:port.
    Raises redis.ConnectionError (MasterNotFoundError) while no master is known."""
    pool = connection.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return sentinel_text(pool.get_master_address())
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return str(kwargs["path"])
    return sentinel_text((str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379))))


def _credentials(url: str | None) -> dict[str, Any]:
    """What REDIS_URL still says when the sentinels name the master: password, user, database, TLS."""
    parsed = parse_url(url or DEFAULT_REDIS_URL)
    given = {key: parsed[key] for key in ("password", "username", "db") if parsed.get(key) is not None}
    if (url or "").startswith("rediss://"):
        given["ssl"] = True
    return given


def _sentinel_options() -> dict[str, Any]:
    # Bounded whatever the client's own timeouts: a worker's blocking client must not hang on a dead sentinel.
    return {"socket_connect_timeout": ASK_TIMEOUT_SECONDS, "socket_timeout": ASK_TIMEOUT_SECONDS, "retry": once()}


class Runtime:
    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = connection or connect_from(settings)
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
