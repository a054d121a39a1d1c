"""The test suite's own guard: a database leased from inside a session's leased database is leased for everyone."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from support.spine import LEASE_KEY, lease_database


def test_a_second_lease_is_recorded_where_every_session_looks(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    registry = redis.Redis.from_url(urlunsplit((parts.scheme, parts.netloc, "/0", parts.query, parts.fragment)))
    session_db = int(redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("db", 0))
    lease = lease_database(redis_url)  # as test_channels_e2e leases its own beside the session's
    assert lease is not None
    url, release = lease
    db = int(urlsplit(url).path.strip("/"))
    try:
        assert db not in (0, session_db)
        # Another session (another worktree, CI job) asking now is refused this database: before, the lease
        # was written into the session's database, where nobody else looks, and two sessions' workers
        # shared one timer space (firing each other's fallbacks with their own channel settings).
        assert registry.get(LEASE_KEY.format(db)) is not None
    finally:
        release()
    assert registry.get(LEASE_KEY.format(db)) is None
