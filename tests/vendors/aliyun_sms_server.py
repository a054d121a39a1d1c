"""A local Alibaba Cloud SMS endpoint (dysmsapi SendSms, 2017-05-25) that checks requests as Alibaba does.

    with AliyunSmsServer(access_key_id="LTAI-test", access_key_secret="...") as aliyun:
        channel = AliyunSmsChannel(client, "LTAI-test", "...", "某某学校", "SMS_0001", base_url=aliyun.base_url)
        aliyun.sent[0]["TemplateParam"]

It recomputes the RPC signature from the raw query (sorted, POP percent-encoding, "GET&%2F&",
HMAC-SHA1 keyed with secret + "&"), checks the access key, the timestamp (15 minutes), nonce reuse,
the sign name, the template and its variables, and the phone number, and answers with Alibaba's
codes and HTTP statuses. As Alibaba documents for notification templates, every variable holds at
most 35 characters (isv.PARAM_LENGTH_LIMIT) and none may carry a URL (isv.PARAM_NOT_SUPPORT_URL):
a link variable carries only the link's parameter, the template holds the fixed part. Like Alibaba, its SignatureDoesNotMatch message quotes the whole string
to sign (phone number included), so tests can prove the channel never passes it on.
Switches: `rate_limit_after`, `fail_next(code)`, `malformed`, `delay`.
https://help.aliyun.com/zh/sms/developer-reference/api-error-codes
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit

from .local import LocalServer

TEMPLATE_VARIABLES = ("class", "name", "category", "link")
MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
URL = re.compile(r"https?://|www\.", re.IGNORECASE)
VARIABLE_MAX = 35  # characters, Chinese ones counted as one


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    raw_query: str
    params: dict[str, str]  # decoded, Signature included
    headers: dict[str, str]


class AliyunSmsServer(LocalServer):
    def __init__(
        self,
        access_key_id: str = "LTAI-relay-test",
        access_key_secret: str = "aliyun-secret-7c1e",
        sign_name: str = "兴城一小",
        template_code: str = "SMS_480001",
        rate_limit_after: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.rate_limit_after = rate_limit_after
        self.clock = clock
        self.delay = 0.0
        self.malformed = False
        self.received: list[Received] = []
        self.sent: list[dict[str, str]] = []  # accepted SendSms calls, decoded parameters
        self._nonces: set[str] = set()
        self._forced: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._serve(_Handler)




    def fail_next(self, code: str, message: str = "error", status: int = 200, times: int = 1) -> None:
        """Answer the next `times` well-signed requests with this code."""
        with self._lock:
            self._forced.extend([(code, message, status)] * times)

    def answer(self, request: Received) -> tuple[int, dict[str, Any]]:
        params = dict(request.params)
        signature = params.pop("Signature", None)
        for required in ("AccessKeyId", "SignatureNonce", "Timestamp", "SignatureMethod", "SignatureVersion"):
            if not params.get(required):
                return 400, _error(f"Missing{required}", f"{required} is mandatory for this action.")
        if signature is None:
            return 400, _error("MissingSignature", "Signature is mandatory for this action.")
        if params["AccessKeyId"] != self.access_key_id:
            return 404, _error("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return 400, _error("InvalidSignatureMethod", "Specified signature method is not valid.")
        try:
            sent_at = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return 400, _error("InvalidTimeStamp.Format", "Specified time stamp is not valid.")
        if abs(sent_at.timestamp() - self.clock()) > 15 * 60:
            return 400, _error("InvalidTimeStamp.Expired", "Specified time stamp or date header is expired.")
        string_to_sign = "GET&%2F&" + _encode(
            "&".join(f"{_encode(k)}={_encode(params[k])}" for k in sorted(params))
        )
        key = (self.access_key_secret + "&").encode()
        expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            message = f"Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            return 400, _error("SignatureDoesNotMatch", message)
        with self._lock:
            if params["SignatureNonce"] in self._nonces:
                return 400, _error("SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces.add(params["SignatureNonce"])
        if params.get("Action") != "SendSms":
            return 404, _error("InvalidAction.NotFound", "Specified api is not found.")
        if params.get("Version") != "2017-05-25":
            return 400, _error("InvalidVersion", "Specified parameter Version is not valid.")
        return 200, self._send_sms(params)

    def _send_sms(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("SignName") != self.sign_name:
            return _error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if params.get("TemplateCode") != self.template_code:
            return _error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            variables = json.loads(params.get("TemplateParam", ""))
        except ValueError:
            return _error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            return _error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if any(not variables.get(name) for name in TEMPLATE_VARIABLES):
            return _error("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(len(v) > VARIABLE_MAX for v in variables.values()):
            return _error("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        if any(URL.search(v) for v in variables.values()):
            return _error("isv.PARAM_NOT_SUPPORT_URL", "不支持url为变量")
        numbers = params.get("PhoneNumbers", "").split(",")
        if not all(MAINLAND_MOBILE.match(number) for number in numbers):
            return _error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        with self._lock:
            if self._forced:
                code, message, _ = self._forced[0]
                if code.startswith("isv.") or code.startswith("isp."):
                    self._forced.pop(0)
                    return _error(code, message)
            if self.rate_limit_after is not None and len(self.sent) >= self.rate_limit_after:
                return _error("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
            self.sent.append(params)
        return {"Code": "OK", "Message": "OK", "BizId": f"{len(self.sent)}^0", "RequestId": str(uuid.uuid4())}

    def forced_platform_error(self) -> tuple[int, dict[str, Any]] | None:
        """Platform errors (Throttling, ServiceUnavailable, ...) come before any business check."""
        with self._lock:
            if self._forced and not self._forced[0][0].startswith(("isv.", "isp.")):
                code, message, status = self._forced.pop(0)
                return status, _error(code, message)
        return None


def _encode(text: str) -> str:
    # The documented recipe: form-encode, then "+" -> "%20", "*" -> "%2A", "%7E" -> "~".
    return (
        quote_plus(text, safe="", encoding="utf-8")
        .replace("+", "%20")
        .replace("*", "%2A")
        .replace("%7E", "~")
    )


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "Code": code,
        "Message": message,
        "RequestId": str(uuid.uuid4()),
        "HostId": "dysmsapi.aliyuncs.com",
    }


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        vendor: AliyunSmsServer = self.server.vendor  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        params: dict[str, str] = {}
        for pair in filter(None, parts.query.split("&")):
            name, _, value = pair.partition("=")
            params[unquote(name)] = unquote(value)
        request = Received(
            "GET", parts.path, parts.query, params, {k.lower(): v for k, v in self.headers.items()}
        )
        with vendor._lock:
            vendor.received.append(request)
        if vendor.delay:
            vendor._closing.wait(vendor.delay)
        if parts.path != "/":
            self._write(404, json.dumps(_error("InvalidAction.NotFound", "not found")).encode())
            return
        if vendor.malformed:
            self._write(200, b'{"Code":"O')
            return
        status, answer = vendor.forced_platform_error() or vendor.answer(request)
        self._write(status, json.dumps(answer, ensure_ascii=False).encode())

    def _write(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass
