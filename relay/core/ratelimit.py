"""Rate limits on Redis with the `limits` package: sliding-window counters shared by every API replica.

A limit is written in `limits` notation, several windows separated by ";" ("20/minute;200/day").
`hit` counts one request against every window and answers how long to wait when any is full.

Emergencies are never limited into silence: the intake route lets a message that classifies P0
through even over the limit and flags it on the timeline (relay/api/requests.py).
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from relay.base import keys
from relay.base.runtime import DEFAULT_REDIS_URL, Runtime


@lru_cache(maxsize=32)
def windows(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec)) if spec.strip() else ()


@lru_cache(maxsize=8)
def _limiter(runtime: Runtime) -> SlidingWindowCounterRateLimiter:
    # The runtime's own connection pool: its short timeouts, and no second set of connections.
    storage = RedisStorage(runtime.settings.redis_url or DEFAULT_REDIS_URL,
                           connection_pool=runtime.redis.connection_pool, key_prefix=keys.RATE_LIMITS_PREFIX)
    return SlidingWindowCounterRateLimiter(storage)


def hit(runtime: Runtime, spec: str, *identifiers: str) -> float | None:
    """Count one request; None when every window had room, else the seconds until one has room again."""
    limiter = _limiter(runtime)
    wait: float | None = None
    for window in windows(spec):
        if not limiter.hit(window, *identifiers):
            reset_at = limiter.get_window_stats(window, *identifiers).reset_time
            wait = max(wait or 0.0, reset_at - time.time(), 1.0)
    return wait


class RateLimited(Exception):
    """Over a limit; the API answers 429 `rate_limited` with Retry-After (relay/api/errors.py)."""

    def __init__(self, wait: float) -> None:
        self.seconds = math.ceil(wait)
        super().__init__(f"请求过于频繁，请 {self.seconds} 秒后再试 (too many requests; retry in {self.seconds}s)")


def refuse(wait: float) -> RateLimited:
    return RateLimited(wait)


def check(runtime: Runtime, spec: str, *identifiers: str) -> None:
    """Raise RateLimited when over the limit."""
    wait = hit(runtime, spec, *identifiers)
    if wait is not None:
        raise refuse(wait)


def client_address(host: str | None) -> str:
    # Behind a proxy, uvicorn puts the client's address here when FORWARDED_ALLOW_IPS trusts the proxy.
    return host or "unknown"
