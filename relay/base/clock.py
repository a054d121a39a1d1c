"""The time Relay acts on: the wall clock, or, for the week replay, a simulated clock in Redis.

Every due time, timer and timeline stamp reads `now()`; Redis expiries (locks, leases of
keys) stay on real time. With RELAY_SIMULATED_CLOCK set, every process reads the moment
the replay has reached from `relay:sim:clock`, so a school week runs in minutes.
"""

from __future__ import annotations

import datetime as dt
import os
import time

SIM_KEY = "relay:sim:clock"


def simulated() -> bool:
    return bool(os.environ.get("RELAY_SIMULATED_CLOCK"))


def now() -> float:
    """Seconds since the epoch."""
    if not simulated():
        return time.time()
    from relay.base.runtime import get_runtime

    raw = get_runtime().redis.get(SIM_KEY)
    return float(raw) if raw is not None else time.time()


def now_in(zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(now(), zone)
