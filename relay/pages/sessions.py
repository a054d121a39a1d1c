"""Staff sign-in for the pages: one-time links, page sessions, CSRF.

Staff have no passwords in the directory, so signing in works like a password reset:
a person types their staff id (or registered phone), and Relay sends a one-time link
to their first contact through the ordinary channels (relay/pages/signin.py). The link is
signed, expires after 10 minutes and works once; opening it shows a button (a chat
app's link preview must not sign anyone in), and pressing it starts a session.

Operators and tests can also start a session from a staff bearer token
(`relay token staff ID`): `GET /staff/login?token=...` shows a button, and pressing it (a POST
with the form's CSRF token) starts the session; a plain GET never does (login CSRF).

A session is a random id in an HttpOnly, SameSite=Lax cookie (Secure over https),
stored in Redis under a digest of the id for 12 hours. Every POST carries the
session's CSRF token; forms before sign-in use a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from relay.api.deps import RuntimeDep
from relay.base import keys, tokens
from relay.base.runtime import Runtime
from relay.base.store import text as store_text
from relay.pages.web import render, secure_cookies
from routing.directory import Role, School, Staff

SESSION_COOKIE = "relay_staff"
FORM_COOKIE = "relay_csrf"  # double-submit token for the forms shown before sign-in
SESSION_SECONDS = 12 * 3600
SIGN_IN_SECONDS = 600
SIGN_IN_PURPOSE = "signin"
# Roles that land on the nurse console after signing in.
NURSE_ROLES = (Role.nurse, Role.safety_officer)


@dataclass(frozen=True)
class StaffSession:
    member: Staff
    school: School
    version: int
    csrf: str
    cookie: str

    @property
    def id(self) -> str:
        return self.member.id


class NotSignedIn(Exception):
    """The page needs a session; the reader goes to the sign-in page and comes back."""


class CsrfRejected(Exception):
    """A POST without the token its form was given: refused, nothing changed."""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Sessions -------------------------------------------------------------------------------------------


def start_session(runtime: Runtime, school_id: str, staff_id: str) -> str:
    """A new session; returns the cookie value `<school>.<random id>` (the school says where it is kept)."""
    session_id = secrets.token_urlsafe(32)
    document = {"staff_id": staff_id, "csrf": secrets.token_urlsafe(32), "started_at": time.time()}
    runtime.redis.set(keys.staff_session(school_id, digest(session_id)), json.dumps(document), ex=SESSION_SECONDS)
    return f"{school_id}.{session_id}"


def _split(cookie: str) -> tuple[str, str] | None:
    school_id, _, session_id = cookie.rpartition(".")
    return (school_id, session_id) if school_id and len(session_id) >= 32 else None


def read_session(runtime: Runtime, cookie: str | None) -> StaffSession | None:
    parts = _split(cookie or "")
    if parts is None:
        return None
    raw = runtime.redis.get(keys.staff_session(parts[0], digest(parts[1])))
    found = runtime.directories.school(parts[0]) if raw else None
    if raw is None or found is None:
        return None
    document = json.loads(raw)
    member = found[1].staff_member(document["staff_id"])
    if member is None:  # removed from the directory since: the session ends with them
        return None
    return StaffSession(member, found[1], found[0], document["csrf"], cookie or "")


def end_session(runtime: Runtime, cookie: str | None) -> None:
    parts = _split(cookie or "")
    if parts is not None:
        runtime.redis.delete(keys.staff_session(parts[0], digest(parts[1])))


def current_session(request: Request, runtime: RuntimeDep) -> StaffSession:
    session = read_session(runtime, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn()
    return session


SignedIn = Annotated[StaffSession, Depends(current_session)]


def set_session_cookie(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="lax",
                        secure=secure_cookies(request), path="/")


def landing(member: Staff, wanted: str | None) -> str:
    """Where a person goes after signing in: where they were going, or their console."""
    if safe_next(wanted):
        return str(wanted)
    if any(role in member.roles for role in NURSE_ROLES):
        return "/nurse"
    # The principal's first question is "what is late?": the report opens with the overdue emergencies.
    return "/staff/report" if Role.principal in member.roles else "/staff"


def safe_next(path: str | None) -> bool:
    """Only a path on this site: never `//evil.example` or a backslash trick."""
    return bool(path) and str(path).startswith("/") and not str(path).startswith(("//", "/\\"))


# CSRF -----------------------------------------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    """A POST from another site is refused even before its token is checked (a second lock)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Under Referrer-Policy no-referrer a browser may send "null" or nothing; the token still has to match.
        return True
    public_url: str = request.app.state.runtime.settings.public_url
    ours = {request.headers.get("host", ""), urlsplit(public_url).netloc}
    return urlsplit(origin).netloc in ours


async def checked_form(request: Request, session: StaffSession) -> FormData:
    """The POSTed form, once its CSRF token matches the session's."""
    form = await request.form()
    token = str(form.get("csrf") or "")
    if not _same_origin(request) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise CsrfRejected()
    return form


async def checked_public_form(request: Request) -> FormData:
    """A form shown before sign-in: the field must equal the cookie set with the form (double submit)."""
    form = await request.form()
    token = str(form.get("csrf") or "")
    cookie = request.cookies.get(FORM_COOKIE, "")
    if not _same_origin(request) or not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
        raise CsrfRejected()
    return form


def render_public_form(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """A page with a pre-sign-in form: a fresh double-submit token in the form and in a cookie."""
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, name, http_status, csrf=token, **context)
    response.set_cookie(FORM_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=secure_cookies(request), path="/staff")
    return response


# One-time sign-in links -----------------------------------------------------------------------------


def sign_in_token(runtime: Runtime, school_id: str, staff_id: str, next_path: str | None) -> str:
    """A signed link token whose nonce is stored (as a digest) until it is used or expires."""
    nonce = secrets.token_urlsafe(24)
    runtime.redis.set(keys.sign_in_link(school_id, digest(nonce)), staff_id, ex=SIGN_IN_SECONDS)
    claims: dict[str, Any] = {"purpose": SIGN_IN_PURPOSE, "sch": school_id, "sid": staff_id, "n": nonce}
    if safe_next(next_path):
        claims["nx"] = next_path
    return tokens.sign(claims, runtime.settings.signing_keys(), SIGN_IN_SECONDS)


def read_sign_in_token(runtime: Runtime, token: str) -> dict[str, Any]:
    claims = tokens.verify(token, runtime.settings.signing_keys())
    if claims.get("purpose") != SIGN_IN_PURPOSE:
        raise tokens.TokenError("not a sign-in link")
    return claims


def use_sign_in_token(runtime: Runtime, token: str) -> dict[str, Any]:
    """The claims of a valid link, which can never be used again; TokenError otherwise."""
    claims = read_sign_in_token(runtime, token)
    stored = runtime.redis.getdel(keys.sign_in_link(str(claims["sch"]), digest(str(claims["n"]))))
    if stored is None or store_text(stored) != claims["sid"]:
        raise tokens.TokenError("sign-in link already used or expired")
    return claims


def sign_in_url(runtime: Runtime, token: str) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/staff/signin/{token}"


def school_of_cookie(request: Request) -> str | None:
    """The school a page session's cookie names (`<school>.<random>`): which shard keeps the session."""
    parts = _split(request.cookies.get(SESSION_COOKIE) or "")
    return parts[0] if parts else None


def install(app: FastAPI) -> None:
    app.state.school_hints = [*getattr(app.state, "school_hints", []), school_of_cookie]

    @app.exception_handler(NotSignedIn)
    async def _sign_in_first(request: Request, _: NotSignedIn) -> Response:
        if request.url.path.endswith((".json", "/events")):
            return JSONResponse({"error": {"code": "not_signed_in", "message": "请先登录 (sign in first)"}}, 401)
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/staff/login?next={quote(wanted, safe='')}", status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _: CsrfRejected) -> Response:
        return render(request, "message.html", 403, title_key="csrf_failed", message_key="csrf_failed")
