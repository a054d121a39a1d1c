"""Rate limits on Redis: sliding-window counters shared by every API replica, one round trip for all windows.

A limit is written in `limits` notation, several windows separated by ";" ("20/minute;200/day"); the
`limits` package parses it and names the counters. The counting itself is one Lua script (`HIT`) that
takes every window of every limit a request is checked against, so that intake can count the guardian's
and the address's windows in the same pipeline as its other reads. It is the algorithm of `limits`'
sliding-window-counter strategy, on the same keys: a window with room counts the request, a full one
does not, and a refusal says how long until the fullest window has room again.

Emergencies are never limited into silence: intake lets a message that classifies P0 through even
over the limit and flags it on the timeline (relay/core/intake.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, parse_many

from relay.base import keys
from relay.base.runtime import Runtime
from relay.base.scripts import Script

# KEYS: per window, its previous and its current counter. ARGV: per window, its limit and its length (s).
# Returns, per window, -1 when it had room (and counted the request), else the milliseconds until it has
# room again (0 when that cannot be told). Redis 6.2 commands only.
HIT = """
local waits = {}
for w = 1, #KEYS / 2 do
  local previous_key, current_key = KEYS[2 * w - 1], KEYS[2 * w]
  local limit = tonumber(ARGV[2 * w - 1])
  local expiry = tonumber(ARGV[2 * w]) * 1000
  local current_ttl = tonumber(redis.call('pttl', current_key))
  if current_ttl > 0 and current_ttl < expiry then
    -- the current window is over: it becomes the previous one
    redis.call('rename', current_key, previous_key)
    redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
  end
  local previous_count = tonumber(redis.call('get', previous_key)) or 0
  local previous_ttl = math.max(tonumber(redis.call('pttl', previous_key)) or 0, 0)
  local current_count = tonumber(redis.call('get', current_key)) or 0
  current_ttl = math.max(tonumber(redis.call('pttl', current_key)) or 0, 0)
  local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
  waits[w] = -1
  if limit >= 1 and weighted + 1 <= limit then
    if redis.call('exists', current_key) == 1 then
      redis.call('incrby', current_key, 1)
    else
      redis.call('set', current_key, 1, 'PX', expiry * 2)
    end
  else
    local reset_in = -1
    if previous_count > 0 then reset_in = previous_ttl % (expiry / previous_count) end
    if current_count > 0 then
      local current_reset = current_ttl % expiry
      if reset_in < 0 or current_reset < reset_in then reset_in = current_reset end
    end
    waits[w] = math.floor(math.max(reset_in, 0))
  end
end
return waits
"""


@lru_cache(maxsize=32)
def windows(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec)) if spec.strip() else ()


@dataclass(frozen=True)
class Limit:
    """One limit to count a request against: its spec ("30/minute;500/day") and whose counter it is."""

    spec: str
    identifiers: tuple[str, ...]


def hit_arguments(limits: Sequence[Limit]) -> tuple[list[str], list[int]]:
    """KEYS and ARGV of one HIT over every window of these limits (the same keys as the `limits` package's)."""
    names: list[str] = []
    argv: list[int] = []
    for limit in limits:
        for window in windows(limit.spec):
            # limits' sliding-window keys: "prefix:{item/ids...}" now, "prefix:{...}/-1" the window before.
            current = f"{keys.RATE_LIMITS_PREFIX}:{{{window.key_for(*limit.identifiers)}}}"
            names += [f"{current}/-1", current]
            argv += [window.amount, window.get_expiry()]
    return names, argv


def waits_from(limits: Sequence[Limit], reply: Sequence[Any]) -> list[float | None]:
    """HIT's answer per limit: None when each of its windows had room, else the seconds (at least one)
    until the fullest has room again."""
    answers = iter(int(milliseconds) for milliseconds in reply)
    waits: list[float | None] = []
    for limit in limits:
        refused = [ms for ms in (next(answers) for _ in windows(limit.spec)) if ms >= 0]
        waits.append(max(max(refused) / 1000, 1.0) if refused else None)
    return waits


HIT_SCRIPT = Script(HIT)


def hit(runtime: Runtime, spec: str, *identifiers: str) -> float | None:
    """Count one request; None when every window had room, else the seconds until one has room again."""
    limit = Limit(spec, identifiers)
    names, argv = hit_arguments([limit])
    return waits_from([limit], HIT_SCRIPT.call(runtime.redis, names, argv))[0] if names else None


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
