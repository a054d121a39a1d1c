"""The parent's H5 page: the mini-program's screens on the web, over the same public API.

The pages are empty shells; relay/static/parent.js fills them from `/v1/...` with the
parent's bearer token, which it keeps in localStorage (it arrives once as `?token=`
in the link the school sends, and is removed from the address bar at once).
`GET /v1/me` (here) tells the page who the parent is and which children they may write about.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.api.deps import CurrentGuardian
from relay.api.errors import documented
from relay.i18n import script_words
from relay.page_views import class_name
from relay.web import lang_of, render

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", tags=["requests"], responses=documented(401, 403, 503))

# The mini-program's category buttons; the value is the category_hint the API understands.
CATEGORY_BUTTONS = (("请假", "Leave"), ("接送", "Pickup"), ("身体不适", "Unwell"), ("作业", "Homework"), ("其他", "Other"))


@api.get("/me")
async def me(guardian: CurrentGuardian) -> dict[str, Any]:
    """The signed-in parent and the children they may write about (for the form's child picker)."""
    school = guardian.school
    found = school.guardian(guardian.id)
    children = []
    for student_id in school.children_of(guardian.id):
        student = school.student(student_id)
        if student is not None:
            children.append({"id": student.id, "name": student.name, "class_name": class_name(school, student.class_id)})
    return {"guardian": {"id": guardian.id, "name": found.name if found else ""},
            "school": {"id": school.id, "name": school.name}, "children": children}


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
