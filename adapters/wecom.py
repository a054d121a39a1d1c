"""WeCom (企业微信) application messages: one textcard to one staff member.

    GET  {base}/cgi-bin/gettoken?corpid=ID&corpsecret=SECRET
         -> {"errcode": 0, "access_token": "...", "expires_in": 7200}
    POST {base}/cgi-bin/message/send?access_token=TOKEN
         {"touser", "msgtype": "textcard", "agentid": <int>, "textcard": {"title", "description", "url", "btntxt"}}
         -> {"errcode", "errmsg", "invaliduser", "unlicenseduser", "msgid"}

WeCom answers HTTP 200 with an `errcode`. A send can succeed (errcode 0) and still drop a
recipient: it comes back, lowercased and "|"-separated, in `invaliduser` or `unlicenseduser`.
The token is cached per instance (WeCom hands back the same one until it expires, so many
workers do not thrash it), refreshed REFRESH_AHEAD seconds before `expires_in`, and dropped on
the token errors (Alertmanager's notify/wechat drops it on 42001): then the send is tried once
more with a fresh token within the same call.

Vendor pages:
    gettoken       https://developer.work.weixin.qq.com/document/path/91039
    message/send   https://developer.work.weixin.qq.com/document/path/90236  (textcard, invaliduser)
    error codes    https://developer.work.weixin.qq.com/document/path/90455
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from adapters import weixin
from adapters.base import (
    Message,
    Outcome,
    Reason,
    Result,
    delivered,
    not_configured,
)

Rule = weixin.Rule
_retry, _permanent = Outcome.retry, Outcome.permanent

# errcode -> what it means for this notification. Codes not listed are permanent client errors.
ERRORS: dict[int, Rule] = {
    -1: Rule(_retry, Reason.server, "system busy"),
    6000: Rule(_retry, Reason.server, "data version conflict"),
    # Token errors: refreshed and tried once more within the call; a second one is retried later.
    40014: Rule(_retry, Reason.auth, "invalid access token"),
    41001: Rule(_retry, Reason.auth, "access token missing"),
    42001: Rule(_retry, Reason.auth, "access token expired"),
    40082: Rule(_retry, Reason.auth, "invalid suite token"),
    42009: Rule(_retry, Reason.auth, "suite token expired"),
    # Our credentials or the app's setup: nothing a retry fixes.
    40001: Rule(_permanent, Reason.auth, "secret refused"),
    40013: Rule(_permanent, Reason.auth, "corp id refused"),
    40091: Rule(_permanent, Reason.auth, "secret refused"),
    40056: Rule(_permanent, Reason.auth, "agent id refused"),
    48002: Rule(_permanent, Reason.auth, "API not permitted for this app"),
    50003: Rule(_permanent, Reason.auth, "app disabled"),
    60020: Rule(_permanent, Reason.auth, "calling IP not trusted by the app"),
    45009: Rule(_retry, Reason.rate_limited, "API call limit reached", 60.0),
    45033: Rule(_retry, Reason.rate_limited, "too many concurrent calls", 1.0),
    40003: Rule(_permanent, Reason.recipient, "invalid userid"),
    40031: Rule(_permanent, Reason.recipient, "invalid userid"),
    46004: Rule(_permanent, Reason.recipient, "user does not exist"),
    50002: Rule(_permanent, Reason.recipient, "member outside the app's visible range"),
    60111: Rule(_permanent, Reason.recipient, "userid does not exist"),
    81013: Rule(_permanent, Reason.recipient, "no valid recipient"),
    82001: Rule(_permanent, Reason.recipient, "no valid recipient"),
    40008: Rule(_permanent, Reason.client, "invalid msgtype"),
    40033: Rule(_permanent, Reason.client, "invalid characters in request"),
    41033: Rule(_permanent, Reason.client, "textcard description missing"),
    44004: Rule(_permanent, Reason.client, "empty content"),
    45002: Rule(_permanent, Reason.client, "message too large"),
}
TOKEN_ERRORS = frozenset({40014, 41001, 42001, 40082, 42009})
BUTTON_TEXT = "确认"  # at most 4 characters
TITLE_BYTES, DESCRIPTION_BYTES = 128, 512  # WeCom cuts longer ones mid-character


def result_for(errcode: int) -> Result:
    return weixin.result_for(ERRORS, errcode)


def _clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut at a character, marked with an ellipsis."""
    if len(text.encode()) <= limit:
        return text
    while len(text.encode()) > limit - 3:
        text = text[:-1]
    return text + "…"


def _when(sent_at: str) -> str:
    try:
        return datetime.fromisoformat(sent_at).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def textcard(message: Message, url: str) -> dict[str, str]:
    """The card: the title once (WeCom shows it above the description), then the parent's words and what to do.

    The link is the card itself (its button), never printed in the description."""
    # Markup is ours: escape the text so a "<" in it cannot break the card.
    style = "highlight" if message.urgency == "P0" else "normal"
    when = _when(message.sent_at)
    header = f'<div class="gray">{when}</div>' if when else ""
    said = f'<div class="normal">{html.escape(message.excerpt, quote=False)}</div>' if message.excerpt else ""
    room = DESCRIPTION_BYTES - len(f'{header}{said}<div class="{style}"></div>'.encode())
    if room < 60 and said:  # the excerpt never crowds out what to do
        said = ""
        room = DESCRIPTION_BYTES - len(f'{header}<div class="{style}"></div>'.encode())
    body = re.sub(r"&\w*…$", "…", _clip(html.escape(message.body, quote=False), room))  # no half entity
    return {
        "title": _clip(message.title, TITLE_BYTES),
        "description": f'{header}{said}<div class="{style}">{body}</div>',
        "url": url,
        "btntxt": BUTTON_TEXT,
    }


def _listed(userid: str, answer: Mapping[str, Any]) -> bool:
    # WeCom lowercases the userids it lists.
    rejected = f"{answer.get('invaliduser') or ''}|{answer.get('unlicenseduser') or ''}".lower()
    return userid.lower() in rejected.split("|")


class WeComChannel:
    name = "wecom"

    def __init__(
        self,
        client: httpx.Client,
        corp_id: str | None,
        secret: str | None,
        agent_id: int | str | None,
        base_url: str = "https://qyapi.weixin.qq.com",
        clock: Callable[[], float] = time.monotonic,
        *,
        fallback_url: str | None = None,
    ) -> None:
        self._client = client
        self._corp_id = corp_id or ""
        self._secret = secret or ""
        self._agent_id = str(agent_id or "").strip()
        self._base_url = base_url.rstrip("/")
        self._fallback_url = fallback_url  # where a card without a link points (RELAY_PUBLIC_URL)
        self._token = weixin.AccessToken(
            lambda: client.get(f"{self._base_url}/cgi-bin/gettoken",
                               params={"corpid": self._corp_id, "corpsecret": self._secret}),
            ERRORS,
            clock,
        )

    def __repr__(self) -> str:
        return f"WeComChannel(corp_id={self._corp_id!r}, agent_id={self._agent_id!r}, base_url={self._base_url!r})"

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        if not (self._corp_id and self._secret and self._agent_id.isdigit()):
            return not_configured("WeCom corp id, secret or agent id")
        userid = (address.get("userid") or "").strip()
        if not userid:
            return Result(Outcome.permanent, Reason.recipient, None, "contact has no WeCom userid")
        url = message.link or self._fallback_url
        document: dict[str, Any] = {"touser": userid, "agentid": int(self._agent_id)}
        if url:
            document.update(msgtype="textcard", textcard=textcard(message, url))
        else:  # a textcard needs a url; a plain text still reaches the teacher
            document.update(msgtype="text", text={"content": f"{message.title}\n{message.body}"})
        body = json.dumps(document, ensure_ascii=False).encode()  # WeCom refuses \uXXXX escapes (40033)
        return self._post(body, userid)

    def _post(self, body: bytes, userid: str) -> Result:
        answer = weixin.post_json(self._client, self._token, f"{self._base_url}/cgi-bin/message/send", body,
                                  TOKEN_ERRORS)
        if isinstance(answer, Result):
            return answer
        if answer["errcode"] != 0:
            return result_for(answer["errcode"])
        if _listed(userid, answer):
            return Result(Outcome.permanent, Reason.recipient, "invaliduser", "recipient rejected by WeCom")
        return delivered("0")

