"""The parent's H5 page: the mini-program's screens on the web, over the same public API.

The pages are empty shells; relay/pages/static/parent.js fills them from `/v1/...` with the
parent's bearer token, which it keeps in localStorage (it arrives once as `?token=`
in the link the school sends, and is removed from the address bar at once).
`GET /v1/me` (relay/api/me.py) tells the page who the parent is and which children they may write about.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.pages.i18n import script_words
from relay.pages.web import lang_of, render

router = APIRouter(include_in_schema=False)

# The mini-program's category buttons; the value is the category_hint the API understands.
CATEGORY_BUTTONS = (("请假", "Leave"), ("接送", "Pickup"), ("身体不适", "Unwell"), ("作业", "Homework"), ("其他", "Other"))


@router.get("/p")
async def parent_home(request: Request) -> HTMLResponse:
    return render(request, "parent.html", view="home", buttons=CATEGORY_BUTTONS,
                  script_words=script_words(lang_of(request)), request_id="")


@router.get("/p/r/{request_id}")
async def parent_request(request_id: str, request: Request) -> HTMLResponse:
    if not re.fullmatch(r"r[0-9a-f]{8,40}", request_id):
        request_id = ""
    return render(request, "parent.html", view="detail", buttons=CATEGORY_BUTTONS,
                  script_words=script_words(lang_of(request)), request_id=request_id)
