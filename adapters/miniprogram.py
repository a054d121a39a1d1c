"""WeChat mini-program subscribe messages: where a parent's request stands, and the login code exchange.

    POST {base}/cgi-bin/stable_token  {"grant_type": "client_credential", "appid", "secret"}
         -> {"access_token", "expires_in"}
    POST {base}/cgi-bin/message/subscribe/send?access_token=TOKEN
         {"touser": openid, "template_id", "page", "data": {"thing1": {"value": ...}, ...}, "lang": "zh_CN"}
         -> {"errcode", "errmsg"}
    GET  {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code
         -> {"openid", "session_key", "unionid"?} or {"errcode", "errmsg"}

stable_token rather than cgi-bin/token: in normal mode it hands every worker the same token until
it nears expiry, where cgi-bin/token would let each worker's refresh retire the others'; and the
secret travels in the body, not in a URL that an HTTP log might keep. The token is cached,
refreshed REFRESH_AHEAD seconds before `expires_in`, dropped on 40001/40014/42001 and the send
tried once more within the call.

A subscription is a parent's one-time consent (wx.requestSubscribeMessage): once used or never
given, WeChat answers 43101, which is permanent for this recipient and never retried.

Template data (DEFAULT_FIELDS; the template chosen in the mini-program console decides the real
keys, and `fields=` maps our parts onto them; a key's prefix decides how its value is fitted):
    thing1  事项  message.title            thing: at most 20 characters, cut with "…"
    phrase2 状态  message.status, else STATUS_WORDS[event]   phrase: at most 5 Chinese characters (已受理 / 已分配 ...)
    thing3  备注  message.body             ("王老师已接手，今天16:00前回复")
    time4   时间  message.sent_at          time: "2026年11月25日 10:00"

Vendor pages:
    stable_token  https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken
    send          https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html
    code2Session  https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/code2Session.html
    error codes   https://developers.weixin.qq.com/doc/oplatform/developers/errCode/errCode.html
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    result_from_exception,
)

Rule = weixin.Rule
_retry, _permanent = Outcome.retry, Outcome.permanent

# errcode -> what it means. Codes not listed are permanent client errors.
ERRORS: dict[int, Rule] = {
    -1: Rule(_retry, Reason.server, "system busy"),
    40001: Rule(_retry, Reason.auth, "access token invalid or not latest"),  # token errors: refreshed once
    40014: Rule(_retry, Reason.auth, "invalid access token"),
    41001: Rule(_retry, Reason.auth, "access token missing"),
    42001: Rule(_retry, Reason.auth, "access token expired"),
    40013: Rule(_permanent, Reason.auth, "app id refused"),
    40125: Rule(_permanent, Reason.auth, "app secret refused"),
    40164: Rule(_permanent, Reason.auth, "calling IP not in the whitelist"),
    40243: Rule(_permanent, Reason.auth, "app secret frozen"),
    48001: Rule(_permanent, Reason.auth, "API not authorized for this app"),
    43107: Rule(_permanent, Reason.auth, "subscribe messages banned for this app"),
    45009: Rule(_retry, Reason.rate_limited, "daily API quota reached"),
    45011: Rule(_retry, Reason.rate_limited, "per-minute API quota reached", 60.0),
    43108: Rule(_retry, Reason.rate_limited, "concurrent sends to one user", 1.0),
    40003: Rule(_permanent, Reason.recipient, "invalid openid"),
    43101: Rule(_permanent, Reason.recipient, "user has no subscription"),
    50002: Rule(_permanent, Reason.recipient, "user limited"),
    40037: Rule(_permanent, Reason.client, "template id refused"),
    41030: Rule(_permanent, Reason.client, "page not in the released mini-program"),
    47003: Rule(_permanent, Reason.client, "template data invalid"),
    45168: Rule(_permanent, Reason.client, "sensitive words"),
}
TOKEN_ERRORS = frozenset({40001, 40014, 41001, 42001})
# jscode2session: a bad code is the client's to redo (wx.login), 40226 is WeChat refusing this user.
LOGIN_ERRORS: dict[int, Reason] = {
    -1: Reason.server,
    40029: Reason.client,  # invalid code
    40163: Reason.client,  # code already used
    41008: Reason.client,  # code missing
    45011: Reason.rate_limited,  # 100 a minute per user
    40226: Reason.recipient,  # high-risk user, login blocked
    40013: Reason.auth,
    40125: Reason.auth,
    40164: Reason.auth,
    40243: Reason.auth,
}
REFRESH_AHEAD = 300.0
# For a message that does not carry its status word (relay's parent notices do, from its event table).
STATUS_WORDS: dict[str, str] = {
    "request.created": "已受理",
    "request.received": "已受理",
    "request.assigned": "已分配",
    "request.claimed": "处理中",
    "request.acknowledged": "处理中",
    "request.escalated": "处理中",
    "request.replied": "已回复",
    "request.answered": "已回复",
    "request.resolved": "已办结",
}
DEFAULT_FIELDS: Mapping[str, str] = {
    "title": "thing1",
    "status": "phrase2",
    "note": "thing3",
    "time": "time4",
}


def result_for(errcode: int) -> Result:
    return weixin.result_for(ERRORS, errcode)


def fit(key: str, value: str) -> str:
    """A value WeChat accepts for a key of this kind (an empty or oversized one is 47003)."""
    value = " ".join(value.split())  # no line breaks or control characters
    kind = key.rstrip("0123456789")
    if kind == "phrase":
        value = "".join(re.findall(r"[\u4e00-\u9fff]", value))[:5] or "有更新"
    elif kind in ("time", "date"):
        try:
            value = datetime.fromisoformat(value).strftime("%Y年%m月%d日 %H:%M")
        except ValueError:
            pass
    else:
        limit = {"thing": 20, "name": 10, "character_string": 32}.get(kind, 20)
        value = value if len(value) <= limit else value[: limit - 1] + "…"
    return value or "—"


def template_data(message: Message, fields: Mapping[str, str] = DEFAULT_FIELDS) -> dict[str, dict[str, str]]:
    parts = {
        "title": message.title,
        "status": message.status or STATUS_WORDS.get(message.event, "处理中"),
        "note": message.body,
        "time": message.sent_at,
    }
    return {key: {"value": fit(key, parts[part])} for part, key in fields.items() if part in parts}


class MiniProgramChannel:
    name = "miniprogram"

    def __init__(
        self,
        client: httpx.Client,
        app_id: str | None,
        app_secret: str | None,
        template_id: str | None,
        base_url: str = "https://api.weixin.qq.com",
        page: str = "pages/request/detail",
        clock: Callable[[], float] = time.monotonic,
        *,
        fields: Mapping[str, str] = DEFAULT_FIELDS,
    ) -> None:
        self._client = client
        self._app_id = app_id or ""
        self._app_secret = app_secret or ""
        self._template_id = template_id or ""
        self._base_url = base_url.rstrip("/")
        self._page = page
        self._fields = fields
        credentials = {"grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret}
        self._token = weixin.AccessToken(
            lambda: client.post(f"{self._base_url}/cgi-bin/stable_token", json=credentials), ERRORS, clock
        )

    def __repr__(self) -> str:
        return f"MiniProgramChannel(app_id={self._app_id!r}, template_id={self._template_id!r})"

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        if not (self._app_id and self._app_secret and self._template_id):
            return not_configured("WeChat app id, app secret or subscribe template id")
        openid = (address.get("openid") or "").strip()
        if not openid:
            return Result(Outcome.permanent, Reason.recipient, None, "guardian has no openid")
        request_id = message.request.get("id")
        document = {
            "touser": openid,
            "template_id": self._template_id,
            "page": f"{self._page}?id={request_id}" if request_id else self._page,
            "data": template_data(message, self._fields),
            "lang": "zh_CN",
        }
        return self._post(json.dumps(document, ensure_ascii=False).encode())

    def _post(self, body: bytes) -> Result:
        answer = weixin.post_json(self._client, self._token, f"{self._base_url}/cgi-bin/message/subscribe/send",
                                  body, TOKEN_ERRORS)
        if isinstance(answer, Result):
            return answer
        return result_for(answer["errcode"]) if answer["errcode"] else delivered("0")



@dataclass(frozen=True)
class Session:
    openid: str
    unionid: str | None = None
    # Decrypts the user's data: never logged, never in a repr, never sent to the client.
    session_key: str = field(default="", repr=False, compare=False)


class LoginError(Exception):
    """jscode2session refused: `code` is WeChat's errcode (None when it never answered one)."""

    def __init__(self, code: str | None, reason: Reason) -> None:
        super().__init__(f"WeChat login failed: {reason.value}" + (f" (errcode {code})" if code else ""))
        self.code = code
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.reason in (Reason.rate_limited, Reason.server, Reason.timeout)


class MiniProgramLogin:
    def __init__(
        self,
        client: httpx.Client,
        app_id: str | None,
        app_secret: str | None,
        base_url: str = "https://api.weixin.qq.com",
    ) -> None:
        self._client = client
        self._app_id = app_id or ""
        self._app_secret = app_secret or ""
        self._base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"MiniProgramLogin(app_id={self._app_id!r})"

    def code_to_session(self, code: str) -> Session:
        if not (self._app_id and self._app_secret):
            raise LoginError(None, Reason.not_configured)
        if not code:
            raise LoginError(None, Reason.client)
        params = {
            "appid": self._app_id,
            "secret": self._app_secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        try:
            response = self._client.get(f"{self._base_url}/sns/jscode2session", params=params)
        except httpx.HTTPError as exc:
            # Raised from None: the httpx error carries the URL, and the URL carries the secret.
            raise LoginError(None, result_from_exception(exc).reason) from None
        answer: dict[str, Any] | Result = weixin.read_answer(response)
        if isinstance(answer, Result):
            raise LoginError(answer.vendor_code, answer.reason)
        errcode = answer["errcode"]
        if errcode:
            raise LoginError(str(errcode), LOGIN_ERRORS.get(errcode, Reason.client))
        openid, unionid, session_key = answer.get("openid"), answer.get("unionid"), answer.get("session_key")
        if not isinstance(openid, str) or not openid:
            raise LoginError("0", Reason.server)
        return Session(
            openid, unionid if isinstance(unionid, str) and unionid else None, str(session_key or "")
        )
