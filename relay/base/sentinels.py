"""Redis Sentinel: the list of sentinels as written in RELAY_REDIS_SENTINELS, and a check that says what is wrong.

redis-py's own `discover_master` answers "No master found" alike for sentinels that are all down, a master
name that no sentinel monitors and a master every sentinel sees down. An operator starting `relay serve`
with a typo needs to know which of those it is, so `find_master` asks each sentinel itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_MASTER = "relay"
Address = tuple[str, int]
# A sentinel answers in microseconds; one that takes longer is as good as down for a process starting.
ASK_TIMEOUT_SECONDS = 1.0


class SentinelProblem(Exception):
    """No master can be found through the configured sentinels; the message says why, naming them."""


def parse(written: str | Sequence[Address] | None) -> list[Address]:
    """`host:port,host:port,...` (spaces allowed; `[::1]:26379` for IPv6) -> addresses; ValueError names the bad one."""
    if written is None:
        return []
    if not isinstance(written, str):
        return [(str(host), int(port)) for host, port in written]
    found: list[Address] = []
    for item in (part.strip() for part in written.split(",")):
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"RELAY_REDIS_SENTINELS: {item!r} is not host:port (e.g. 10.0.0.5:26379)")
        found.append((host, int(port)))
    return found


def once() -> Retry:
    """No retries: a sentinel that does not answer is skipped for the next one at once. (redis-py's default
    retries ten times with backoff, which held /readyz for seconds per sentinel while all were down.)"""
    return Retry(NoBackoff(), 0)


def text(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Answer:
    """What one sentinel said about the master (or why it said nothing)."""

    sentinel: Address
    master: Address | None = None
    down: bool = False  # it monitors the master but sees it down (a failover may be under way)
    monitors: tuple[str, ...] = ()  # the master names it knows
    error: str | None = None  # it did not answer


def ask(sentinel: Address, master: str, timeout: float = ASK_TIMEOUT_SECONDS) -> Answer:
    client = redis.Redis(host=sentinel[0], port=sentinel[1], socket_connect_timeout=timeout, socket_timeout=timeout,
                         retry=once())
    try:
        # RESP2 (what this client speaks): a dict of master name -> state.
        masters = cast(dict[str, dict[str, Any]], client.sentinel_masters())
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return Answer(sentinel, error=f"{type(exc).__name__}: {exc}")
    except redis.ResponseError as exc:  # a plain Redis, not a sentinel, or one that wants a password
        return Answer(sentinel, error=f"not a sentinel ({exc})")
    finally:
        client.close()
    state = masters.get(master)
    if state is None:
        return Answer(sentinel, monitors=tuple(sorted(masters)))
    down = not state["is_master"] or state["is_sdown"] or state["is_odown"]
    return Answer(sentinel, master=(state["ip"], int(state["port"])), down=down, monitors=tuple(sorted(masters)))


def find_master(sentinels: Sequence[Address], master: str) -> Address:
    """The master's address as the first sentinel that knows it up says; SentinelProblem says precisely why not."""
    if not sentinels:
        raise SentinelProblem("RELAY_REDIS_SENTINELS names no sentinel")
    answers = [ask(one, master) for one in sentinels]
    for answer in answers:
        if answer.master is not None and not answer.down:
            return answer.master
    listed = ", ".join(text(a.sentinel) for a in answers)
    reached = [a for a in answers if a.error is None]
    if not reached:
        why = "; ".join(f"{text(a.sentinel)}: {a.error}" for a in answers)
        raise SentinelProblem(f"no sentinel in RELAY_REDIS_SENTINELS ({listed}) answers: {why}")
    if all(a.master is None for a in reached):
        known = sorted({name for a in reached for name in a.monitors})
        raise SentinelProblem(
            f"no sentinel ({', '.join(text(a.sentinel) for a in reached)}) monitors a master named {master!r} "
            f"(RELAY_REDIS_SENTINEL_MASTER); they monitor: {', '.join(known) or 'nothing'}")
    seen = sorted({text(a.master) for a in reached if a.master is not None})
    raise SentinelProblem(f"the sentinels see master {master!r} ({', '.join(seen)}) down: no master is known "
                          "until they fail over to a replica")
