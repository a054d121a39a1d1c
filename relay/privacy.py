"""The privacy notice parents agree to when they bind their WeChat account (`/privacy`, versioned).

Binding records the guardian's consent against `NOTICE_VERSION`; a new version of the notice
(a new purpose, a new recipient, a longer retention) means a new version string, and parents
binding after that agree to the new text.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relay.api.deps import RuntimeDep
from relay.web import render

NOTICE_VERSION = "2026-05-01"
NOTICE_PATH = "/privacy"

router = APIRouter(include_in_schema=False)


def notice(public_url: str) -> dict[str, str]:
    """What the mini-program shows before asking for consent."""
    return {"version": NOTICE_VERSION, "url": public_url.rstrip("/") + NOTICE_PATH}


@router.get(NOTICE_PATH)
async def privacy_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    return render(request, "privacy.html", version=NOTICE_VERSION,
                  retention_days=runtime.settings.retention_days)
