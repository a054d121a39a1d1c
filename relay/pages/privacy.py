"""The privacy notice's page (`/privacy`); its version and address are relay/school/privacy_notice.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.api.deps import RuntimeDep
from relay.pages.web import render
from relay.school.privacy_notice import NOTICE_PATH, NOTICE_VERSION

router = APIRouter(include_in_schema=False)


@router.get(NOTICE_PATH)
async def privacy_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    return render(request, "privacy.html", version=NOTICE_VERSION,
                  retention_days=runtime.settings.retention_days)
