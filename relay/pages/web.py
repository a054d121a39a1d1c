"""What every server-rendered page shares: templates, the reader's language, security headers, static files.

Chinese first: a page is in Chinese unless the reader chose English with `?lang=en`
(remembered in a cookie) or the toggle in the header.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.pages.i18n import LANGS, words

HERE = Path(__file__).parent
LANG_COOKIE = "relay_lang"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),  # parents' text is shown escaped, always
)

# Pages run only our own files: no inline script or style, no framing, no plugins.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# /docs loads Swagger UI from its CDN with an inline bootstrap script: it keeps its own policy.
_OWN_POLICY = ("/docs", "/redoc")


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    kept = request.cookies.get(LANG_COOKIE)
    return kept if kept in LANGS else "zh"


def secure_cookies(request: Request) -> bool:
    """Cookies are Secure when Relay is served over https (RELAY_PUBLIC_URL says how)."""
    public_url: str = request.app.state.runtime.settings.public_url
    return public_url.lower().startswith("https://")


def render(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    lang = lang_of(request)
    t = words(lang)
    page = templates.get_template(name).render(request=request, lang=lang, t=t, other_lang_url=_toggle(request, lang),
                                               **context)
    response = HTMLResponse(page, status_code=http_status)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure_cookies(request))
    return response


def _toggle(request: Request, lang: str) -> str:
    other = "en" if lang == "zh" else "zh"
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "token")]
    params.append(("lang", other))
    return request.url.path + "?" + urlencode(params)


def clock(iso_text: str | None) -> str:
    """`2026-05-11T09:05:00+08:00` → `05-11 09:05` in the school's own time (as stored)."""
    if not iso_text:
        return ""
    moment = dt.datetime.fromisoformat(iso_text)
    return moment.strftime("%m-%d %H:%M")


templates.filters["clock"] = clock


class SecurityHeaders:
    """Headers on every response; the strict content policy on pages (not on /docs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),  # links carry tokens: never pass them on
                ]
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html") and not path.startswith(_OWN_POLICY):
                    extra += [(b"content-security-policy", PAGE_POLICY.encode()), (b"x-frame-options", b"DENY")]
                headers += [(name, value) for name, value in extra if name not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
