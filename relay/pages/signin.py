"""The sign-in pages and the job that sends a one-time sign-in link (how it works: relay/pages/sessions.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Annotated

import redis
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from adapters.base import Message, Result, delivered, not_configured
from relay.api.deps import RuntimeDep, ShardsDep, school_of_token
from relay.base import keys, tokens
from relay.base.log import log
from relay.base.runtime import ROUTINE, Runtime, get_runtime
from relay.pages import sessions
from relay.pages.sessions import SignedIn, checked_form, checked_public_form, render_public_form
from relay.pages.web import render
from routing.directory import Staff

router = APIRouter(include_in_schema=False)

# A person may ask for this many links per window; more would let anyone flood a colleague's phone.
LINKS_PER_WINDOW = 5
WINDOW_SECONDS = 900
# Channels that carry a free-text link. The SMS template is the urgent-alert one (class, student,
# category, link), which cannot carry a sign-in message, so SMS contacts are skipped.
LINK_CHANNELS = ("wecom", "dingtalk", "webhook")

NextParam = Annotated[str | None, Query(alias="next", max_length=500)]


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-11:]


def find_staff(runtime: Runtime, who: str) -> list[tuple[str, Staff]]:
    """Everyone with this staff id, or with this phone number among their contacts, in any school.

    Ids are unique within a school, not across a district: each person found gets their own link.
    """
    who = who.strip()
    if not who or len(who) > 64:
        return []
    wanted = _digits(who) if len(_digits(who)) >= 11 else None
    found = []
    for school_id in runtime.directories.school_ids():
        school = runtime.directories.school(school_id)
        for member in school[1].staff if school else ():
            if member.id == who or (wanted and any(c.phone and _digits(c.phone) == wanted for c in member.contacts)):
                found.append((school_id, member))
    return found


def count_ask(connection: redis.Redis, school_id: str, staff_id: str) -> int:
    """This ask's number in the person's current window; the window starts with its first ask."""
    counter = keys.sign_in_requests(school_id, staff_id)
    with connection.pipeline(transaction=True) as pipe:
        # SET NX EX, then INCR (which keeps the TTL), rather than INCR and EXPIRE NX: EXPIRE's NX
        # needs Redis 7, and the embedded Redis of `relay dev` and a fresh machine is 6.2.
        pipe.set(counter, 0, nx=True, ex=WINDOW_SECONDS)
        pipe.incr(counter)
        return int(pipe.execute()[1])


@router.get("/staff/login")
async def login_page(request: Request, runtime: RuntimeDep, next_path: NextParam = None,
                     token: str | None = None) -> Response:
    wanted = next_path if sessions.safe_next(next_path) else ""
    if token is None:
        return render_public_form(request, "login.html", next=wanted)
    # `relay token staff ID` for operators and tests. A GET never signs anyone in: a link or an image on
    # another site could otherwise put a browser into a session of the attacker's choosing (login
    # CSRF). It shows a button; pressing it POSTs the token with the form's CSRF token.
    if _staff_of_token(runtime, token) is None:
        return render_public_form(request, "login.html", 401, error_key="login_bad_token", next="")
    return render_public_form(request, "signin.html", token=token, next=wanted)


@router.post("/staff/login/token")
async def sign_in_with_token(request: Request, shards: ShardsDep) -> Response:
    form = await checked_public_form(request)
    token = str(form.get("token") or "")
    runtime = shards.for_school(school_of_token(shards, token)) or shards.default  # the form names the school
    found = _staff_of_token(runtime, token)
    if found is None:
        return render_public_form(request, "login.html", 401, error_key="login_bad_token", next="")
    school_id, member = found
    return _signed_in(request, runtime, school_id, member, str(form.get("next") or ""), via="token")


def _staff_of_token(runtime: Runtime, token: str) -> tuple[str, Staff] | None:
    """The school and staff member a staff bearer token names, if it is valid and they are in the directory."""
    try:
        caller = tokens.read_caller(token, runtime.settings.signing_keys())
    except tokens.TokenError:
        return None
    if caller.kind != "staff":
        return None
    school_id = caller.school or runtime.directories.school_of_staff(caller.id)
    found = runtime.directories.school(school_id) if school_id else None
    member = found[1].staff_member(caller.id) if found else None
    return (school_id, member) if school_id and member else None


def _signed_in(request: Request, runtime: Runtime, school_id: str, member: Staff, wanted: str | None,
               via: str) -> Response:
    response = RedirectResponse(sessions.landing(member, wanted), status_code=303)
    sessions.set_session_cookie(request, response, sessions.start_session(runtime, school_id, member.id))
    log.info("staff_signed_in", school_id=school_id, staff_id=member.id, via=via)
    return response


@router.post("/staff/login")
async def ask_for_link(request: Request, shards: ShardsDep) -> HTMLResponse:
    form = await checked_public_form(request)
    wanted = str(form.get("next") or "")
    found = [(runtime, school_id, member) for runtime in shards.runtimes.values()
             for school_id, member in find_staff(runtime, str(form.get("who") or ""))]
    for runtime, school_id, member in found:  # the link is made and sent by a worker of the person's shard
        if count_ask(runtime.redis, school_id, member.id) <= LINKS_PER_WINDOW:
            runtime.queues[ROUTINE].enqueue("relay.pages.signin.send_link", school_id, member.id,
                                            wanted if sessions.safe_next(wanted) else None,
                                            result_ttl=0, failure_ttl=3600)
        else:
            log.warning("sign_in_limited", school_id=school_id, staff_id=member.id)
    # The same answer whether or not the id exists: the page does not tell who works here.
    return render(request, "message.html", title_key="login_title", message_key="login_sent",
                  extra_key="login_again")


@router.get("/staff/signin/{token}")
async def sign_in_confirm(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Shows a button rather than signing in: a chat app's link preview must not use up the link."""
    try:
        claims = sessions.read_sign_in_token(runtime, token)
        usable = runtime.redis.exists(keys.sign_in_link(str(claims["sch"]), sessions.digest(str(claims["n"]))))
    except tokens.TokenError:
        usable = False
    if not usable:
        return render(request, "message.html", 404, title_key="login_title", message_key="login_invalid",
                      link="/staff/login")
    return render_public_form(request, "signin.html")


@router.post("/staff/signin/{token}")
async def sign_in(token: str, request: Request, runtime: RuntimeDep) -> Response:
    await checked_public_form(request)
    try:
        claims = sessions.use_sign_in_token(runtime, token)
    except tokens.TokenError:
        claims = {}
    found = runtime.directories.school(str(claims["sch"])) if claims else None
    member = found[1].staff_member(str(claims["sid"])) if found else None
    if member is None:
        return render(request, "message.html", 404, title_key="login_title", message_key="login_invalid",
                      link="/staff/login")
    return _signed_in(request, runtime, str(claims["sch"]), member, claims.get("nx"), via="link")


@router.post("/staff/logout")
async def logout(request: Request, session: SignedIn, runtime: RuntimeDep) -> Response:
    await checked_form(request, session)
    sessions.end_session(runtime, session.cookie)
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response


# The job ------------------------------------------------------------------------------------------


def send_link(school_id: str, staff_id: str, next_path: str | None = None) -> str:
    """Make a one-time link and send it to the person's first contact that can carry one.

    Made here rather than at the request, so that the link is never stored in a queued job.
    """
    runtime = get_runtime()
    found = runtime.directories.school(school_id)
    member = found[1].staff_member(staff_id) if found else None
    contact = next((c for c in member.contacts if c.channel.value in LINK_CHANNELS), None) if member else None
    if found is None or member is None or contact is None:
        log.warning("sign_in_not_sent", school_id=school_id, staff_id=staff_id, reason="no contact for a link")
        return "no_contact"
    link = sessions.sign_in_url(runtime, sessions.sign_in_token(runtime, school_id, staff_id, next_path))
    message = Message(
        event="staff.sign_in",
        event_id=f"signin.{staff_id}.{uuid.uuid4().hex[:12]}",
        attempt=1,
        sent_at=dt.datetime.now(found[1].zone).isoformat(timespec="seconds"),
        urgency="P2",
        title="Relay 工作台登录链接 (sign-in link)",
        body=f"10分钟内有效，仅可使用一次；如非本人操作请忽略。Valid once, for 10 minutes. {link}",
        link=link,
        recipient={"id": staff_id, "name": member.name, "role": "staff"},
        request={"sign_in_url": link, "expires_in_s": sessions.SIGN_IN_SECONDS},
    )
    channel = runtime.channels.get(contact.channel.value)
    if channel is not None:
        result = channel.send(message, contact.address())
    elif runtime.settings.dev_outbox:
        result = _to_outbox(runtime, school_id, contact.channel.value, message)
    else:
        result = not_configured(contact.channel.value)
    log.info("sign_in_link_sent", school_id=school_id, staff_id=staff_id, channel=contact.channel.value,
             outcome=result.outcome.value, reason=result.reason.value)
    return result.outcome.value


def _to_outbox(runtime: Runtime, school_id: str, channel: str, message: Message) -> Result:
    entry = {"channel": channel, "event": message.event, "event_id": message.event_id, "urgency": message.urgency,
             "recipient": dict(message.recipient), "title": message.title, "body": message.body,
             "link": message.link, "sent_at": message.sent_at}
    with runtime.redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.outbox(school_id), json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(keys.outbox(school_id), 0, 499)
        pipe.execute()
    return delivered("dev-outbox")
