"""A local Tencent Cloud SMS endpoint (API 3.0 SendSms, 2021-01-11) that checks requests as Tencent does.

    with TencentSmsServer(secret_id="AKID-test", secret_key="...") as tencent:
        channel = TencentSmsChannel(client, "AKID-test", "...", "1400000001", "兴城一小", "2000001",
                                    base_url=tencent.base_url)
        tencent.sent[0]["TemplateParamSet"]

It parses the Authorization header and recomputes the TC3-HMAC-SHA256 signature over the headers
the client says it signed (content-type and host at least) and the raw body, checks the SecretId,
the timestamp (5 minutes), the credential date and service, the action, version and region, the
SdkAppId, sign name, template and its four parameters, and each phone number. As Tencent documents,
no parameter may carry a URL (InvalidParameterValue.ProhibitedUseUrlInTemplateParameter: a link's
fixed part belongs in the template), and an individually verified account's parameter holds at most
12 characters (InvalidParameterValue.TemplateParameterLengthLimit; `max_param_chars=None` is an
enterprise account, which has no such limit). Whole-request errors
come back as {"Response": {"Error": ...}}, per-number ones in SendStatusSet, both with HTTP 200.
Switches: `rate_limit_after`, `fail_next(code, per_number=...)`, `malformed`, `delay`.
https://cloud.tencent.com/document/api/382/52075
"""

from __future__ import annotations

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

from .local import LocalServer

AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
MAINLAND_MOBILE = re.compile(r"^\+861[3-9]\d{9}$")
URL = re.compile(r"https?://|www\.", re.IGNORECASE)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class TencentSmsServer(LocalServer):
    def __init__(
        self,
        secret_id: str = "AKID-relay-test",
        secret_key: str = "tencent-secret-3b9d",
        app_id: str = "1400000001",
        sign_name: str = "兴城一小",
        template_id: str = "2000001",
        rate_limit_after: int | None = None,
        max_param_chars: int | None = 12,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.app_id = app_id
        self.sign_name = sign_name
        self.template_id = template_id
        self.rate_limit_after = rate_limit_after
        self.max_param_chars = max_param_chars
        self.clock = clock
        self.delay = 0.0
        self.malformed = False
        self.received: list[Received] = []
        self.sent: list[dict[str, Any]] = []  # accepted SendSms bodies
        self._forced: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self._serve(_Handler)




    def fail_next(self, code: str, per_number: bool = False, times: int = 1) -> None:
        """Answer the next `times` well-signed requests with this code, whole-request or per number."""
        with self._lock:
            self._forced.extend([(code, per_number)] * times)

    def answer(self, request: Received) -> dict[str, Any]:
        problem = self._check_signature(request)
        if problem:
            return _error(*problem)
        headers = request.headers
        if headers.get("x-tc-action") != "SendSms":
            return _error("InvalidAction", "The requested action does not exist.")
        if headers.get("x-tc-version") != "2021-01-11":
            return _error("NoSuchVersion", "The requested version does not exist.")
        if not headers.get("x-tc-region"):
            return _error("MissingParameter", "The request is missing a required parameter `Region`.")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error("FailedOperation.JsonParseFail", "Failed to parse the JSON body.")
        if body.get("SmsSdkAppId") != self.app_id:
            return _error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verification failed.")
        if body.get("SignName") != self.sign_name:
            return _error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "signature format error or unapproved"
            )
        if body.get("TemplateId") != self.template_id:
            return _error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "template is not approved or not exist"
            )
        values = body.get("TemplateParamSet")
        if (
            not isinstance(values, list)
            or len(values) != 4
            or not all(isinstance(v, str) and v for v in values)
        ):
            return _error(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "params do not match template"
            )
        if self.max_param_chars is not None and any(len(v) > self.max_param_chars for v in values):
            return _error(
                "InvalidParameterValue.TemplateParameterLengthLimit", "single template parameter is too long"
            )
        if any(URL.search(v) for v in values):
            return _error(
                "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", "url in template parameter"
            )
        numbers = body.get("PhoneNumberSet")
        if not isinstance(numbers, list) or not numbers:
            return _error("MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty.")
        with self._lock:
            forced = self._forced.pop(0) if self._forced else None
            if forced and not forced[1]:
                return _error(forced[0], "error")
            if self.rate_limit_after is not None and len(self.sent) >= self.rate_limit_after:
                return _error("RequestLimitExceeded", "Your current request times equals to `limit`.")
            statuses = []
            for number in numbers:
                if forced:
                    code, message = forced[0], "error"
                elif MAINLAND_MOBILE.match(str(number)):
                    code, message = "Ok", "send success"
                else:
                    code, message = "InvalidParameterValue.IncorrectPhoneNumber", "incorrect number format"
                statuses.append(_status(str(number), code, message, body.get("SessionContext", "")))
            if any(status["Code"] == "Ok" for status in statuses):
                self.sent.append(body)
        return {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}

    def _check_signature(self, request: Received) -> tuple[str, str] | None:
        match = AUTHORIZATION.match(request.headers.get("authorization", ""))
        if not match:
            return "AuthFailure.InvalidAuthorization", "Authorization is not valid."
        if match["secret_id"] != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found."
        timestamp = request.headers.get("x-tc-timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - self.clock()) > 300:
            return "AuthFailure.SignatureExpire", "Signature expired."
        date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
        signed = match["signed"].split(";")
        if match["date"] != date or match["service"] != "sms" or not {"content-type", "host"} <= set(signed):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
        canonical_headers = "".join(
            f"{name}:{request.headers.get(name, '').strip().lower()}\n" for name in signed
        )
        canonical_request = (
            f"POST\n/\n\n{canonical_headers}\n{match['signed']}\n{hashlib.sha256(request.body).hexdigest()}"
        )
        string_to_sign = (
            f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        secret_date = hmac.new(f"TC3{self.secret_key}".encode(), date.encode(), hashlib.sha256).digest()
        secret_service = hmac.new(secret_date, b"sms", hashlib.sha256).digest()
        secret_signing = hmac.new(secret_service, b"tc3_request", hashlib.sha256).digest()
        expected = hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["signature"]):
            return "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
        return None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}}


def _status(number: str, code: str, message: str, session_context: str) -> dict[str, Any]:
    serial = f"2640:{uuid.uuid4().int % 10**18}" if code == "Ok" else ""
    return {
        "SerialNo": serial,
        "PhoneNumber": number,
        "Fee": 1 if code == "Ok" else 0,
        "SessionContext": session_context,
        "Code": code,
        "Message": message,
        "IsoCode": "CN",
    }


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        vendor: TencentSmsServer = self.server.vendor  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with vendor._lock:
            vendor.received.append(request)
        if vendor.delay:
            vendor._closing.wait(vendor.delay)
        if vendor.malformed:
            self._write(200, b'{"Response":{"SendStatusSet":[{"Co')
        elif self.path != "/":
            self._write(404, json.dumps(_error("InvalidAction", "not found")).encode())
        else:
            self._write(200, json.dumps(vendor.answer(request), ensure_ascii=False).encode())

    def _write(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass
