"""Redis WAIT at intake: a 201 only once RELAY_INTAKE_MIN_REPLICAS replicas hold the request.

Replication is asynchronous: a master killed a millisecond after answering may take an accepted request
with it, and Sentinel then promotes a replica that never saw it. WAIT makes the answer wait until enough
replicas have acknowledged everything this connection wrote; if they do not within the timeout, the
request is stored on the master only and the parent is told 503, so that their retry (same
Idempotency-Key) either finds it, once more confirmed, or stores it again on the new master.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from relay.base import keys

PROBE_TTL_SECONDS = 60


@dataclass(frozen=True)
class ReplicaWait:
    replicas: int
    timeout_ms: int


class NotReplicated(redis.RedisError):
    """Stored on the master, but fewer replicas than required confirmed it in time."""

    def __init__(self, confirmed: int, wanted: ReplicaWait) -> None:
        super().__init__(f"{confirmed} of {wanted.replicas} replica(s) confirmed within {wanted.timeout_ms} ms")
        self.confirmed = confirmed
        self.wanted = wanted


def wanted(replicas: int, timeout_ms: int) -> ReplicaWait | None:
    """None when intake does not wait (0 replicas: the default)."""
    return ReplicaWait(replicas, timeout_ms) if replicas > 0 else None


def check(confirmed: int, wait: ReplicaWait) -> None:
    if confirmed < wait.replicas:
        raise NotReplicated(confirmed, wait)


def confirm(connection: redis.Redis, school_id: str, wait: ReplicaWait) -> None:
    """Wait for the replicas to hold whatever this master holds now, including writes made on other connections.

    WAIT counts the replicas that have the connection's last write; a connection that only read has none to
    wait for on Redis 7. A write to the school's probe key first (same connection: one pipeline) makes the
    master's current offset this connection's, so a request found by a retry is confirmed too."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(keys.replica_probe(school_id), 1, ex=PROBE_TTL_SECONDS)
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        _, confirmed = pipe.execute()
    check(int(confirmed), wait)
