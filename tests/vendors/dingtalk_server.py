"""A local DingTalk custom robot that checks requests the way DingTalk does.

    with DingTalkServer(secret="SEC...") as robot:
        channel.send(message, {"url": robot.robot_url})
        robot.received[0].json

It verifies the access token, the timestamp (within an hour) and the HMAC-SHA256 sign, recomputed
here from the documented rule, and the optional keywords; it answers DingTalk's errcodes
(300001, 310000, 130101, 40035, 43004) and can be told to answer any other code, to rate-limit
after N messages, to answer a cut-off body, or to answer slowly.
https://open.dingtalk.com/document/orgapp/custom-robot-access
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local import LocalServer


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class DingTalkServer(LocalServer):
    def __init__(
        self,
        access_token: str = "robot-token-0001",
        secret: str | None = None,
        keywords: Iterable[str] = (),
        rate_limit_after: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_token = access_token
        self.secret = secret
        self.keywords = tuple(keywords)
        self.rate_limit_after = rate_limit_after
        self.clock = clock
        self.delay = 0.0  # seconds before answering
        self.malformed = False  # answer HTTP 200 with a cut-off body
        self.received: list[Received] = []
        self.delivered: list[dict[str, Any]] = []
        self._forced: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._serve(_Handler)




    @property
    def robot_url(self) -> str:
        return f"{self.base_url}/robot/send?access_token={self.access_token}"

    def fail_next(self, errcode: int, errmsg: str = "error", times: int = 1) -> None:
        """Answer the next `times` well-signed messages with this errcode."""
        with self._lock:
            self._forced.extend([(errcode, errmsg)] * times)

    def answer(self, request: Received) -> dict[str, Any]:
        if request.query.get("access_token") != self.access_token:
            return _error(300001, "token is not exist")
        if self.secret is not None:
            problem = self._check_sign(request.query)
            if problem:
                return _error(310000, problem)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error(43004, "无效的HTTP HEADER Content-Type")
        try:
            document = json.loads(request.body)
        except ValueError:
            return _error(40035, "缺少参数 json")
        if not _well_formed(document):
            return _error(40035, "缺少参数 json")
        if self.keywords and not any(
            word in json.dumps(document, ensure_ascii=False) for word in self.keywords
        ):
            return _error(310000, "keywords not in content")
        with self._lock:
            if self._forced:
                return _error(*self._forced.pop(0))
            if self.rate_limit_after is not None and len(self.delivered) >= self.rate_limit_after:
                return _error(130101, "send too fast, exceed 20 times per minute")
            self.delivered.append(document)
        return {"errcode": 0, "errmsg": "ok"}

    def _check_sign(self, query: dict[str, str]) -> str | None:
        assert self.secret is not None
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or not sign:
            return "sign not match, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]"
        if abs(self.clock() * 1000 - int(timestamp)) > 3600 * 1000:
            return "invalid timestamp"
        key = self.secret.encode("utf-8")
        expected = base64.b64encode(
            hmac.new(key, f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        )
        if not hmac.compare_digest(expected, sign.encode()):
            return "sign not match, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]"
        return None


def _error(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


def _well_formed(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    kind = document.get("msgtype")
    if kind == "markdown":
        part = document.get("markdown") or {}
        return bool(part.get("title") and part.get("text"))
    if kind == "actionCard":
        part = document.get("actionCard") or {}
        has_button = bool(part.get("singleTitle") and part.get("singleURL")) or bool(part.get("btns"))
        return bool(part.get("title") and part.get("text") and has_button)
    if kind == "text":
        return bool((document.get("text") or {}).get("content"))
    return False


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        vendor: DingTalkServer = self.server.vendor  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Received(parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        with vendor._lock:
            vendor.received.append(request)
        if vendor.delay:
            vendor._closing.wait(vendor.delay)
        if parts.path != "/robot/send":
            self._write(404, b'{"errcode":404,"errmsg":"not found"}')
        elif vendor.malformed:
            self._write(200, b'{"errcode":0,"errm')
        else:
            self._write(200, json.dumps(vendor.answer(request)).encode())

    def _write(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: object) -> None:
        pass
