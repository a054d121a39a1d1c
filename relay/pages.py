"""Server-rendered pages: the one-click acknowledgement and the dev outbox.

The staff queue, the nurse console and the parent's page live in staff_pages.py,
nurse_pages.py and parent_pages.py.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay import actions, keys, links, store, tokens
from relay.api.deps import RuntimeDep
from relay.views import owner_words
from relay.web import render

router = APIRouter(include_in_schema=False)


@router.get("/a/{token}")
async def ack_page(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Shows a button rather than acknowledging: a chat app's link preview must not acknowledge."""
    try:
        link = links.read_ack_link(runtime.settings, token)
    except tokens.TokenError:
        return render(request, "ack.html", 404, state="invalid")
    found = runtime.directories.school(link.school)
    record = store.load(runtime.redis, link.school, link.request_id) if found else None
    if record is None or found is None:
        return render(request, "ack.html", 404, state="invalid")
    return render(request, "ack.html", record=record, state="ask", owner=owner_words(found[1], record.owner))


@router.post("/a/{token}")
async def ack_confirm(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    try:
        link = links.read_ack_link(runtime.settings, token)
    except tokens.TokenError:
        return render(request, "ack.html", 404, state="invalid")
    found = runtime.directories.school(link.school)
    if found is None:
        return render(request, "ack.html", 404, state="invalid")
    record = actions.acknowledge(runtime, found[1], link.request_id, link.staff_id, via="link")
    if record is None:
        return render(request, "ack.html", 404, state="invalid")
    return render(request, "ack.html", record=record, state="done", owner=owner_words(found[1], record.owner))


@router.get("/dev/outbox")
async def outbox(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    if not runtime.settings.dev_outbox:
        return render(request, "outbox.html", 404, entries=[], disabled=True)
    entries = []
    for school_id in runtime.directories.school_ids():
        for raw in runtime.redis.lrange(keys.outbox(school_id), 0, 199):
            entries.append(dict(json.loads(raw), school_id=school_id))
    entries.sort(key=lambda e: e.get("sent_at", ""), reverse=True)
    return render(request, "outbox.html", entries=entries, disabled=False)
