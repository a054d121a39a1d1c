"""A local WeChat mini-program server that speaks the documented wire format over a real socket.

    with WeChatServer() as wechat:
        wechat.subscribe("o-parent-1")                 # the parent tapped 允许 once
        wechat.add_login_code("code-1", "o-parent-1", unionid="u-1")
        channel = MiniProgramChannel(httpx.Client(), wechat.app_id, wechat.app_secret,
                                     wechat.template_id, base_url=wechat.base_url)

Endpoints: POST /cgi-bin/stable_token, GET /cgi-bin/token, POST /cgi-bin/message/subscribe/send,
GET /sns/jscode2session (see adapters/miniprogram.py). A subscription is one-time, as in WeChat:
each accepted send uses one up, and a send without one gets 43101. Template values are checked
by their key's kind (thing <= 20 characters, phrase <= 5 Chinese characters, time format) and
a bad one gets 47003. Switches: `expire_token()` (the next send gets 42001), `rate_limit_after`
(45009), `fail_next(kind)` ("not_json", "html_502", "empty"), `delay` for slow answers.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local import LocalServer

_VALUE_RULES = {
    "thing": re.compile(r".{1,20}", re.S),
    "phrase": re.compile(r"[\u4e00-\u9fff]{1,5}"),
    "time": re.compile(r"(\d{4}年\d{1,2}月\d{1,2}日 )?\d{1,2}:\d{2}(~.+)?"),
    "character_string": re.compile(r"[\x21-\x7e]{1,32}"),
    "name": re.compile(r"[\u4e00-\u9fff]{1,10}|[A-Za-z .·]{1,20}"),
}


class WeChatServer(LocalServer):
    def __init__(
        self,
        app_id: str = "wx-test-app",
        app_secret: str = "wechat-secret-7d1e",
        template_id: str = "tpl-request-status",
        pages: tuple[str, ...] = ("pages/request/detail",),
    ) -> None:
        self.app_id, self.app_secret, self.template_id, self.pages = app_id, app_secret, template_id, pages
        self.expires_in = 7200
        self.rate_limit_after: int | None = None
        self.delay = 0.0
        self.subscriptions: dict[str, int] = {}  # openid -> one-time subscriptions left
        self.messages: list[dict[str, Any]] = []  # accepted sends
        self.raw_bodies: list[bytes] = []
        self.answers: list[int] = []  # errcode of every subscribe/send answer
        self.token_requests = 0
        self.send_requests = 0
        self.login_requests = 0
        self.issued_tokens: list[str] = []
        self.issued_session_keys: list[str] = []
        self.high_risk_codes: set[str] = set()
        self.login_rate_limited = False
        self._login_codes: dict[str, tuple[str, str | None]] = {}
        self._used_codes: set[str] = set()
        self._token: str | None = None
        self._token_expires = 0.0
        self._expired: set[str] = set()
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._serve(_handler(self))


    @property
    def current_token(self) -> str | None:
        return self._token



    def subscribe(self, openid: str, times: int = 1) -> None:
        self.subscriptions[openid] = self.subscriptions.get(openid, 0) + times

    def add_login_code(self, code: str, openid: str, unionid: str | None = None) -> None:
        self._login_codes[code] = (openid, unionid)

    def expire_token(self) -> None:
        with self._lock:
            if self._token:
                self._expired.add(self._token)
                self._token = None

    def fail_next(self, kind: str, times: int = 1) -> None:
        self._faults.extend([kind] * times)

    # --- the endpoints -------------------------------------------------------------------------

    def token(self, appid: Any, secret: Any, *, stable: bool, force_refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
            if appid != self.app_id:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if secret != self.app_secret:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            # stable_token in normal mode hands back the valid token; cgi-bin/token always a new one.
            if not stable or force_refresh or self._token is None or time.monotonic() >= self._token_expires:
                if self._token:
                    self._expired.add(self._token)
                self._token = "wechat-token-" + secrets.token_hex(8)
                self._token_expires = time.monotonic() + self.expires_in
                self.issued_tokens.append(self._token)
            return {"access_token": self._token, "expires_in": self.expires_in}

    def send(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        with self._lock:
            self.send_requests += 1
            self.raw_bodies.append(body)
            answer = self._send(query.get("access_token"), body)
            self.answers.append(answer["errcode"])
            return answer

    def _send(self, token: str | None, body: bytes) -> dict[str, Any]:
        rid = "rid: " + secrets.token_hex(4)
        if not token:
            return {"errcode": 41001, "errmsg": f"access_token missing {rid}"}
        if token in self._expired:
            return {"errcode": 42001, "errmsg": f"access_token expired {rid}"}
        if token != self._token:
            return {
                "errcode": 40001,
                "errmsg": f"invalid credential, access_token is invalid or not latest {rid}",
            }
        try:
            message = json.loads(body)
        except ValueError:
            return {"errcode": 47001, "errmsg": f"data format error {rid}"}
        openid = message.get("touser")
        if not isinstance(openid, str) or openid not in self.subscriptions:
            return {"errcode": 40003, "errmsg": f"invalid openid {rid}"}
        if message.get("template_id") != self.template_id:
            return {"errcode": 40037, "errmsg": f"invalid template_id {rid}"}
        if "page" in message and str(message["page"]).split("?")[0] not in self.pages:
            return {"errcode": 41030, "errmsg": f"invalid page {rid}"}
        data = message.get("data")
        if not isinstance(data, dict) or not data:
            return {"errcode": 47003, "errmsg": f"argument invalid! data is empty {rid}"}
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            rule = _VALUE_RULES.get(key.rstrip("0123456789"))
            if not isinstance(value, str) or (rule is not None and not rule.fullmatch(value)):
                return {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid {rid}"}
        if self.rate_limit_after is not None and len(self.messages) >= self.rate_limit_after:
            return {"errcode": 45009, "errmsg": f"reach max api daily quota limit {rid}"}
        if self.subscriptions[openid] <= 0:
            return {"errcode": 43101, "errmsg": f"user refuse to accept the msg {rid}"}
        self.subscriptions[openid] -= 1
        self.messages.append(message)
        return {"errcode": 0, "errmsg": "ok", "msgid": secrets.randbelow(10**12)}

    def jscode2session(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.login_requests += 1
            code = query.get("js_code", "")
            if query.get("appid") != self.app_id:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if query.get("secret") != self.app_secret:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            if query.get("grant_type") != "authorization_code":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            if self.login_rate_limited:
                return {
                    "errcode": 45011,
                    "errmsg": "api minute-quota reach limit mustslower retry next minute",
                }
            if code in self.high_risk_codes:
                return {"errcode": 40226, "errmsg": "high risk user"}
            if code in self._used_codes:
                return {"errcode": 40163, "errmsg": "code been used"}
            if code not in self._login_codes:
                return {"errcode": 40029, "errmsg": "invalid code"}
            self._used_codes.add(code)
            openid, unionid = self._login_codes[code]
            session_key = secrets.token_urlsafe(16)
            self.issued_session_keys.append(session_key)
            answer = {"openid": openid, "session_key": session_key}
            return answer | ({"unionid": unionid} if unionid else {})


def _handler(server: WeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _answer(self, body: bytes) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if server.delay:
                server._closing.wait(server.delay)
            fault = server._faults.pop(0) if server._faults else None
            if fault == "html_502":
                return self._write(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            if fault == "not_json":
                return self._write(200, b"<html>upstream error</html>", "text/html")
            if fault == "empty":
                return self._write(200, b"", "application/json")
            route = (self.command, url.path)
            if route == ("POST", "/cgi-bin/stable_token"):
                try:
                    credentials = json.loads(body)
                except ValueError:
                    credentials = {}
                answer = server.token(
                    credentials.get("appid"),
                    credentials.get("secret"),
                    stable=True,
                    force_refresh=bool(credentials.get("force_refresh")),
                )
            elif route == ("GET", "/cgi-bin/token"):
                answer = server.token(query.get("appid"), query.get("secret"), stable=False)
            elif route == ("POST", "/cgi-bin/message/subscribe/send"):
                answer = server.send(query, body)
            elif route == ("GET", "/sns/jscode2session"):
                # WeChat answers this one as text/plain.
                return self._write(200, json.dumps(server.jscode2session(query)).encode(), "text/plain")
            else:
                return self._write(404, b"not found", "text/plain")
            self._write(
                200, json.dumps(answer, ensure_ascii=False).encode(), "application/json; encoding=utf-8"
            )

        def _write(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # the request line carries the token
            pass

    return Handler
