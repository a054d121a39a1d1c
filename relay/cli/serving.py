"""How `relay serve` runs uvicorn: httptools and uvloop (pinned), and TCP_NODELAY on every connection, also
with several worker processes.

httptools and uvloop: under wrk with two workers running, relay serve --workers 2 answered ~1,565
requests/s against ~870 with h11 or httptools on asyncio's loop (2026-12-06). Where uvloop is not
installed (Windows), uvicorn's "auto" falls back to asyncio.

With `--workers`, uvicorn binds the listening socket itself as `socket.socket(family)`, whose protocol
number is 0, and asyncio sets TCP_NODELAY only on accepted sockets whose protocol says TCP: every
answer then waited for the client's delayed ACK, ~40 ms on Linux, on a keep-alive connection (a bare
endpoint measured 0.8 ms with one process, 44 ms with two). Setting it on each connection fixes that.
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LOOP = "auto"


class NoDelayHttpTools(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(cast(asyncio.Transport, transport))
