"""Server-sent events for the staff pages: one small JSON event whenever a request of the school changes.

Intake and every state change publish on `relay:{school}:events` (relay/base/changes.py);
each open page holds one subscription. A stream ends by itself after `STREAM_SECONDS`
and the browser reconnects at once (`retry`), refreshing its list on every (re)connect:
so a page never misses a change for long, and a restarting server is not held open
by its listeners.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from relay.api.deps import RuntimeDep
from relay.base import keys
from relay.base.runtime import Runtime, connect_async
from relay.pages.sessions import SignedIn

router = APIRouter(include_in_schema=False)

STREAM_SECONDS = 25.0
HEARTBEAT_SECONDS = 10.0
RECONNECT_MS = 1000


def _connection(request: Request, runtime: Runtime) -> aioredis.Redis:
    """One asyncio Redis client per app and shard (its pool gives each listener a connection)."""
    state = request.app.state
    if getattr(state, "event_redis", None) is None:
        state.event_redis = {}
    settings = runtime.settings
    where = (settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_master)
    if where not in state.event_redis:
        # Through Sentinel too: after a failover the browser's reconnect subscribes on the new master.
        state.event_redis[where] = connect_async(*where)
    client: aioredis.Redis = state.event_redis[where]
    return client


async def _stream(request: Request, runtime: Runtime, school_id: str) -> AsyncIterator[bytes]:
    pubsub = _connection(request, runtime).pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(keys.events(school_id))
        yield f"retry: {RECONNECT_MS}\nevent: ready\ndata: {{}}\n\n".encode()
        ends = time.monotonic() + STREAM_SECONDS
        beat = time.monotonic() + HEARTBEAT_SECONDS
        while time.monotonic() < ends and not await request.is_disconnected():
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
                yield f"event: change\ndata: {data}\n\n".encode()
            elif time.monotonic() > beat:
                beat = time.monotonic() + HEARTBEAT_SECONDS
                yield b": still here\n\n"
    except (OSError, aioredis.RedisError):
        return  # the browser reconnects; nothing to tell it that it will not learn by refreshing
    finally:
        try:
            await pubsub.aclose()
        except (OSError, aioredis.RedisError):
            pass


@router.get("/staff/events")
async def staff_events(request: Request, session: SignedIn, runtime: RuntimeDep) -> StreamingResponse:
    """`event: change` with `{"id", "status", "at"}` for each change of a request of the school."""
    return StreamingResponse(
        _stream(request, runtime, session.school.id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
