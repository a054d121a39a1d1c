"""Server-rendered pages: the one-click acknowledgement and the dev outbox.

The staff queue, the nurse console and the parent's page live in staff_pages.py,
nurse_pages.py and parent_pages.py.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.api.deps import ShardsDep
from relay.base import keys, links, store, tokens
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.base.shards import Shards
from relay.base.store import RequestRecord
from relay.core import actions
from relay.core.permissions import can_act
from relay.core.views import owner_words
from relay.pages.web import render
from routing.directory import School, Staff

router = APIRouter(include_in_schema=False)


Granted = tuple[Runtime, links.AckLink, School, Staff | None, RequestRecord]


def _granted(shards: Shards, code: str) -> Granted | None:
    """The shard, the link's grant, the school's current directory, the person as it lists them now, and the request."""
    link = None
    for runtime in shards.runtimes.values():  # a short code says its school only to the shard that keeps it
        try:
            link = links.resolve(runtime.redis, runtime.settings, runtime.directories.school_ids(), code)
            break
        except tokens.TokenError:
            continue
    home = shards.for_school(link.school) if link else None
    if link is None or home is None:
        return None
    found = home.directories.school(link.school)
    record = store.load(home.redis, link.school, link.request_id) if found else None
    if found is None or record is None:
        return None
    return home, link, found[1], found[1].staff_member(link.staff_id), record


def _still_entitled(member: Staff | None, school: School, record: RequestRecord) -> bool:
    """A link acts for its person only while the current directory still has them and lets them act:
    someone removed by a roster import (or no longer nurse) cannot stop the escalations by an old link."""
    return member is not None and can_act(member, school, record)


@router.get("/a/{code}")
async def ack_page(code: str, request: Request, shards: ShardsDep) -> HTMLResponse:
    """Shows a button rather than acknowledging: a chat app's link preview must not acknowledge."""
    granted = _granted(shards, code)
    if granted is None:
        return render(request, "ack.html", 404, state="invalid")
    _, _, school, member, record = granted
    if not _still_entitled(member, school, record):
        return render(request, "ack.html", 403, state="revoked")
    return render(request, "ack.html", record=record, state="ask", owner=owner_words(school, record.owner))


@router.post("/a/{code}")
async def ack_confirm(code: str, request: Request, shards: ShardsDep) -> HTMLResponse:
    granted = _granted(shards, code)
    if granted is None:
        return render(request, "ack.html", 404, state="invalid")
    runtime, link, school, member, record = granted
    if not _still_entitled(member, school, record):
        log.info("ack_link_refused", request_id=link.request_id, school_id=link.school, staff_id=link.staff_id,
                 reason="not in the current directory" if member is None else "may not act")
        return render(request, "ack.html", 403, state="revoked")
    done = actions.acknowledge(runtime, school, link.request_id, link.staff_id, via="link")
    if done is None:
        return render(request, "ack.html", 404, state="invalid")
    return render(request, "ack.html", record=done, state="done", owner=owner_words(school, done.owner))


@router.get("/dev/outbox")
async def outbox(request: Request, shards: ShardsDep) -> HTMLResponse:
    if not shards.default.settings.dev_outbox:
        return render(request, "outbox.html", 404, entries=[], disabled=True)
    entries = []
    for runtime in shards.runtimes.values():
        for school_id in runtime.directories.school_ids():
            for raw in runtime.redis.lrange(keys.outbox(school_id), 0, 199):
                entries.append(dict(json.loads(raw), school_id=school_id))
    entries.sort(key=lambda e: e.get("sent_at", ""), reverse=True)
    return render(request, "outbox.html", entries=entries, disabled=False)
