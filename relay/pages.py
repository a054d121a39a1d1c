"""Server-rendered pages: the one-click acknowledgement, the dev outbox, the parent page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from relay import actions, keys, links, store, tokens
from relay.api.deps import RuntimeDep
from relay.views import owner_words

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),  # parents' text is shown escaped, always
)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)


@router.get("/a/{token}")
async def ack_page(token: str, runtime: RuntimeDep) -> HTMLResponse:
    """Shows a button rather than acknowledging: a chat app's link preview must not acknowledge."""
    try:
        link = links.read_ack_link(runtime.settings, token)
    except tokens.TokenError:
        return render("ack.html", 404, state="invalid")
    found = runtime.directories.school(link.school)
    record = store.load(runtime.redis, link.school, link.request_id) if found else None
    if record is None or found is None:
        return render("ack.html", 404, state="invalid")
    return render("ack.html", record=record, state="ask", owner=owner_words(found[1], record.owner))


@router.post("/a/{token}")
async def ack_confirm(token: str, runtime: RuntimeDep) -> HTMLResponse:
    try:
        link = links.read_ack_link(runtime.settings, token)
    except tokens.TokenError:
        return render("ack.html", 404, state="invalid")
    found = runtime.directories.school(link.school)
    if found is None:
        return render("ack.html", 404, state="invalid")
    record = actions.acknowledge(runtime, found[1], link.request_id, link.staff_id, via="link")
    if record is None:
        return render("ack.html", 404, state="invalid")
    return render("ack.html", record=record, state="done", owner=owner_words(found[1], record.owner))


@router.get("/dev/outbox")
async def outbox(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    if not runtime.settings.dev_outbox:
        return render("outbox.html", 404, entries=[], disabled=True)
    entries = []
    for school_id in runtime.directories.school_ids():
        for raw in runtime.redis.lrange(keys.outbox(school_id), 0, 199):
            entries.append(dict(json.loads(raw), school_id=school_id))
    entries.sort(key=lambda e: e.get("sent_at", ""), reverse=True)
    return render("outbox.html", entries=entries, disabled=False)


@router.get("/p")
async def parent_page() -> HTMLResponse:
    return render("parent.html")
