"""What `relay serve`, `relay worker` and `relay dev` check before they start: that Sentinel names a master.

A process started against sentinels that are all down, or a master name nobody monitors, would answer
503 forever and look alive; it says what is wrong instead and exits non-zero (a supervisor retries it).
"""

from __future__ import annotations

import sys

import redis

from relay.base.runtime import connect_from
from relay.base.sentinels import SentinelProblem, find_master, parse, text
from relay.base.settings import Settings


def master_problem(settings: Settings) -> str | None:
    """Why no master can be used through RELAY_REDIS_SENTINELS, or None (also when Sentinel is not configured)."""
    sentinels = parse(settings.redis_sentinels)
    if not sentinels:
        return None
    try:
        address = find_master(sentinels, settings.redis_sentinel_master)
    except SentinelProblem as exc:
        return str(exc)
    client = connect_from(settings)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        return f"master {text(address)} refuses the password in REDIS_URL: {exc}"
    except redis.RedisError as exc:
        return f"master {text(address)} (named by the sentinels) does not answer: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def require_master(settings: Settings, command: str) -> bool:
    """Print the problem on stderr, prefixed with the command; False when there is one."""
    problem = master_problem(settings)
    if problem is not None:
        print(f"relay {command}: {problem}", file=sys.stderr)
    return problem is None
