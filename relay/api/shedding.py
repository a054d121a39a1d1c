"""Load shedding and emergencies first at intake: past saturation, routine messages are refused at once, and
an emergency never waits behind the routine ones admitted before it.

An API process runs intake on its event loop one request at a time (its Redis calls block the loop), and
requests that arrive meanwhile wait their turn as tasks. `InFlight` counts the POST /v1/requests this
process has begun and not yet answered; each yields once as it begins, so that all that arrived together
are counted before the first of them goes on. When more than RELAY_INTAKE_MAX_IN_FLIGHT are in flight, a
message that does not classify P0 is answered 503 with Retry-After before any round trip to Redis: the
queue drains at the cost of a classification (microseconds) per message, and a P0 behind them is reached
within a bounded wait. A message that classifies P0 (or that the parent marked urgent) is always admitted.

Admitted routine messages then take turns (`InFlight.routine_turn`): one at a time, each handing the turn
to the next through the event loop, so that every request that arrived meanwhile is read and classified
between two of them, and an emergency among those is stored at once, ahead of the routine ones waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from relay.api.errors import ApiError
from relay.base import metrics

INTAKE_PATH = "/v1/requests"
RETRY_AFTER_SECONDS = 2


class InFlight:
    """This process's POST /v1/requests begun and not yet answered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: never shed
        self.count = 0
        self._busy = False  # a routine message holds the turn
        self._waiting: deque[asyncio.Future[None]] = deque()

    def saturated(self) -> bool:
        return 0 < self.limit < self.count

    @asynccontextmanager
    async def routine_turn(self) -> AsyncIterator[None]:
        """Hold the routine turn while storing a routine message; an emergency never takes it."""
        await self._take_turn()
        try:
            yield
        finally:
            self._pass_turn()

    async def _take_turn(self) -> None:
        if not self._busy:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()  # handed to this request as it went away: hand it on
            raise

    def _pass_turn(self) -> None:
        # The next one resumes on the loop's next round, after what is ready now (arrivals, classifications).
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False


class IntakeGate:
    """ASGI middleware: counts intake requests in flight (see InFlight)."""

    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != INTAKE_PATH:
            await self.app(scope, receive, send)
            return
        self.in_flight.count += 1
        try:
            await asyncio.sleep(0)  # the others that arrived with this one are counted before it goes on
            await self.app(scope, receive, send)
        finally:
            self.in_flight.count -= 1


def shed() -> ApiError:
    metrics.intake_shed()
    return ApiError(503, "overloaded", f"系统繁忙，请 {RETRY_AFTER_SECONDS} 秒后重试；紧急情况请直接致电学校 "
                                       f"(the service is saturated; retry in {RETRY_AFTER_SECONDS}s)",
                    {"Retry-After": str(RETRY_AFTER_SECONDS)})
