"""A local WeCom (企业微信) server that speaks the documented wire format over a real socket.

    with WeComServer(corp_id="ww-test", secret="s3cret", agent_id=1000002) as wecom:
        channel = WeComChannel(httpx.Client(), "ww-test", "s3cret", 1000002, base_url=wecom.base_url)
        ...
        assert wecom.messages[0]["textcard"]["title"] == ...

Endpoints: GET /cgi-bin/gettoken, POST /cgi-bin/message/send (see adapters/wecom.py).
Switches, for the failures a real WeCom has: `expire_token()` (the next send gets 42001),
`rate_limit_after` (45009 once that many sends were accepted), `unknown_users` (81013 with
invaliduser), `unlicensed_users` (errcode 0 with unlicenseduser), `fail_next(kind)` for a
malformed answer ("not_json", "html_502", "empty"), and `delay` for slow answers.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local import LocalServer


class WeComServer(LocalServer):
    def __init__(
        self, corp_id: str = "ww-test-corp", secret: str = "wecom-secret-9f2c", agent_id: int = 1000002
    ) -> None:
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.expires_in = 7200
        self.rate_limit_after: int | None = None
        self.unknown_users: set[str] = set()
        self.unlicensed_users: set[str] = set()
        self.delay = 0.0
        self.messages: list[dict[str, Any]] = []  # accepted sends, as parsed JSON
        self.raw_bodies: list[bytes] = []  # every message/send body, accepted or not
        self.token_requests = 0
        self.send_requests = 0
        self.issued_tokens: list[str] = []
        self.answers: list[int] = []  # errcode of every message/send answer
        self._token: str | None = None
        self._token_expires = 0.0
        self._expired: set[str] = set()
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._serve(_handler(self))


    @property
    def current_token(self) -> str | None:
        return self._token



    def expire_token(self) -> None:
        """WeCom may retire a token early: the next send with it gets 42001."""
        with self._lock:
            if self._token:
                self._expired.add(self._token)
                self._token = None

    def fail_next(self, kind: str, times: int = 1) -> None:
        self._faults.extend([kind] * times)

    # --- the endpoints -------------------------------------------------------------------------

    def gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
            if query.get("corpid") != self.corp_id:
                return {"errcode": 40013, "errmsg": "invalid corpid"}
            if query.get("corpsecret") != self.secret:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            # Within its validity WeCom hands back the same token.
            if self._token is None or time.monotonic() >= self._token_expires:
                if self._token:
                    self._expired.add(self._token)
                self._token = "wecom-token-" + secrets.token_hex(8)
                self._token_expires = time.monotonic() + self.expires_in
                self.issued_tokens.append(self._token)
            return {"errcode": 0, "errmsg": "ok", "access_token": self._token, "expires_in": self.expires_in}

    def send(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        with self._lock:
            self.send_requests += 1
            self.raw_bodies.append(body)
            answer = self._send(query.get("access_token"), body)
            self.answers.append(answer["errcode"])
            return answer

    def _send(self, token: str | None, body: bytes) -> dict[str, Any]:
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if token in self._expired:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if token != self._token:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if b"\\u" in body:
            return {"errcode": 40033, "errmsg": "invalid charset. please check your request"}
        try:
            message = json.loads(body)
        except ValueError:
            return {"errcode": 47001, "errmsg": "data format error"}
        if message.get("agentid") != self.agent_id:
            return {"errcode": 40056, "errmsg": "invalid agentid"}
        msgtype = message.get("msgtype")
        if msgtype == "textcard":
            card = message.get("textcard") or {}
            if not card.get("description"):
                return {"errcode": 41033, "errmsg": "description missing"}
            if not str(card.get("url", "")).startswith(("http://", "https://")):
                return {"errcode": 40094, "errmsg": "invalid url"}
        elif msgtype != "text" or not (message.get("text") or {}).get("content"):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        if self.rate_limit_after is not None and len(self.messages) >= self.rate_limit_after:
            return {"errcode": 45009, "errmsg": "api freq out of limit"}
        users = [user for user in str(message.get("touser", "")).split("|") if user]
        invalid = [user.lower() for user in users if user in self.unknown_users]
        unlicensed = [user.lower() for user in users if user in self.unlicensed_users]
        if users and len(invalid) == len(users):
            return {
                "errcode": 81013,
                "errmsg": "user & party & tag all invalid",
                "invaliduser": "|".join(invalid),
            }
        self.messages.append(message)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(invalid),
            "unlicenseduser": "|".join(unlicensed),
            "msgid": secrets.token_hex(6),
        }


def _handler(server: WeComServer) -> type[BaseHTTPRequestHandler]:
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
            if (self.command, url.path) == ("GET", "/cgi-bin/gettoken"):
                answer = server.gettoken(query)
            elif (self.command, url.path) == ("POST", "/cgi-bin/message/send"):
                answer = server.send(query, body)
            else:
                return self._write(404, b"not found", "text/plain")
            self._write(
                200, json.dumps(answer, ensure_ascii=False).encode(), "application/json; charset=UTF-8"
            )

        def _write(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout tests)
                pass

        def log_message(self, format: str, *args: Any) -> None:  # the request line carries the token
            pass

    return Handler
