"""The SMS channel through Tencent Cloud SMS (腾讯云短信, API 3.0 SendSms, version 2021-01-11).

POST / with a JSON body, signed TC3-HMAC-SHA256: a canonical request over the content-type,
host and x-tc-action headers and the body's SHA-256, a credential scope "<UTC date>/sms/tc3_request",
and a signing key derived from "TC3" + secret_key through the date, the service and "tc3_request".

The urgent-alert template takes four parameters, in order (TemplateParamSet, from
`message.sms_params`): the class, the student's masked name (张同学), the category in words, the
acknowledgement link's short code — a template like
"{1} {2} {3}，请尽快点击确认 https://relay.example.cn/a/{4}", with the link's fixed part (RELAY_PUBLIC_URL/a/)
in the template: Tencent refuses URLs in variables (InvalidParameterValue.ProhibitedUseUrlInTemplateParameter).
An individually verified account's variable holds at most 12 characters
(InvalidParameterValue.TemplateParameterLengthLimit; the code is 12); an enterprise account has no such limit.

Tencent answers HTTP 200 with either {"Response": {"Error": {"Code": ...}}} for the whole request,
or {"Response": {"SendStatusSet": [{"Code": "Ok" | <per-number code>, ...}]}}. Neither the phone
number, the keys nor the signature ever appears in a Result.

Daily and hourly per-number limits are permanent (reason recipient): no retry within a useful
backoff can succeed, and an emergency should move on to the person's next contact instead.

Docs: https://cloud.tencent.com/document/api/382/55981 (SendSms)
      https://cloud.tencent.com/document/api/382/52072 (签名方法 v3)
      https://cloud.tencent.com/document/api/382/52075 (错误码)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from adapters.base import (
    Message,
    Outcome,
    Reason,
    Result,
    delivered,
    not_configured,
    result_from_exception,
    result_from_status,
)

DEFAULT_BASE_URL = "https://sms.tencentcloudapi.com"
API_VERSION = "2021-01-11"
SERVICE = "sms"
ACTION = "SendSms"
CONTENT_TYPE = "application/json; charset=utf-8"

_RETRY_SERVER = (Outcome.retry, Reason.server)
_RATE_LIMITED = (Outcome.retry, Reason.rate_limited)
_AUTH = (Outcome.permanent, Reason.auth)
_CLIENT = (Outcome.permanent, Reason.client)
_RECIPIENT = (Outcome.permanent, Reason.recipient)

# Code -> (outcome, reason, detail, retry_after). A family entry ("InternalError") covers its
# sub-codes unless they have their own row. Unknown codes are permanent.
# https://cloud.tencent.com/document/api/382/52075
ERROR_CODES: dict[str, tuple[Outcome, Reason, str, float | None]] = {
    "RequestLimitExceeded": (*_RATE_LIMITED, "api request rate limited", None),
    "LimitExceeded.PhoneNumberThirtySecondLimit": (*_RATE_LIMITED, "number limited for 30 seconds", 30.0),
    "LimitExceeded.DeliveryFrequencyLimit": (*_RATE_LIMITED, "frequency policy hit", 60.0),
    "LimitExceeded.PhoneNumberOneHourLimit": (*_RECIPIENT, "number reached its hourly limit", None),
    "LimitExceeded.PhoneNumberDailyLimit": (*_RECIPIENT, "number reached its daily limit", None),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": (*_RECIPIENT, "same content daily limit", None),
    "LimitExceeded.PhoneNumberCountLimit": (*_CLIENT, "too many numbers", None),
    "LimitExceeded.DailyLimit": (*_CLIENT, "account daily quota reached", None),
    "LimitExceeded.AppDailyLimit": (*_CLIENT, "app daily quota reached", None),
    "LimitExceeded.AppMainlandChinaDailyLimit": (*_CLIENT, "app daily quota reached", None),
    "LimitExceeded.AppCountryOrRegionDailyLimit": (*_CLIENT, "app daily quota reached", None),
    "LimitExceeded.AppGlobalDailyLimit": (*_CLIENT, "app daily quota reached", None),
    "InternalError": (*_RETRY_SERVER, "tencent internal error", None),
    "InternalError.Timeout": (Outcome.retry, Reason.timeout, "tencent timed out", None),
    "InternalError.RequestTimeException": (*_AUTH, "request time refused: check the clock", None),
    "InternalError.RestApiInterfaceNotExist": (*_CLIENT, "interface does not exist", None),
    "AuthFailure": (*_AUTH, "credentials refused", None),
    "UnauthorizedOperation": (*_AUTH, "not authorized", None),
    "UnauthorizedOperation.SerivceSuspendDueToArrears": (*_CLIENT, "service suspended for arrears", None),
    "FailedOperation.InsufficientBalanceInSmsPackage": (*_CLIENT, "sms package balance too low", None),
    "FailedOperation.PhoneNumberInBlacklist": (*_RECIPIENT, "number is on the do-not-disturb list", None),
    "FailedOperation.PhoneNumberParseFail": (*_RECIPIENT, "phone number refused", None),
    "FailedOperation.SignatureIncorrectOrUnapproved": (*_CLIENT, "sign name refused", None),
    "FailedOperation.TemplateIncorrectOrUnapproved": (*_CLIENT, "template refused", None),
    "FailedOperation.TemplateUnapprovedOrNotExist": (*_CLIENT, "template refused", None),
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": (
        *_CLIENT,
        "template parameters refused",
        None,
    ),
    "FailedOperation.ContainSensitiveWord": (*_CLIENT, "content refused", None),
    "FailedOperation.JsonParseFail": (*_CLIENT, "body is not json", None),
    "FailedOperation.FailResolvePacket": (*_CLIENT, "body refused", None),
    "InvalidParameterValue.IncorrectPhoneNumber": (*_RECIPIENT, "phone number refused", None),
    "InvalidParameterValue.TemplateParameterLengthLimit": (*_CLIENT, "template parameter too long", None),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": (
        *_CLIENT,
        "variable may not carry a url",
        None,
    ),
    "InvalidParameterValue": (*_CLIENT, "parameter value refused", None),
    "InvalidParameter": (*_CLIENT, "parameter refused", None),
    "MissingParameter": (*_CLIENT, "parameter missing", None),
    "UnsupportedOperation": (*_CLIENT, "operation not supported", None),
}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def credential_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(signed_headers: Mapping[str, str], payload: bytes) -> str:
    """POST / with no query; `signed_headers` maps lower-case names to values, in signing order."""
    canonical_headers = "".join(f"{name}:{value.strip().lower()}\n" for name, value in signed_headers.items())
    return "\n".join(
        ["POST", "/", "", canonical_headers, ";".join(signed_headers), hashlib.sha256(payload).hexdigest()]
    )


def signature(secret_key: str, service: str, timestamp: int, canonical: str) -> str:
    date = credential_date(timestamp)
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def phone_number(phone: str) -> str | None:
    """E.164 as Tencent asks: "+86" before an 11-digit mainland number."""
    digits = phone.strip().replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif len(digits) == 11:
        digits = "86" + digits
    return "+" + digits if digits.isdigit() else None


def lookup(code: str) -> tuple[Outcome, Reason, str, float | None] | None:
    family = code
    while True:
        if family in ERROR_CODES:
            return ERROR_CODES[family]
        if "." not in family:
            return None
        family = family.rsplit(".", 1)[0]


def result_from_code(code: str) -> Result:
    known = lookup(code)
    if known is None:
        return Result(Outcome.permanent, Reason.client, code, "unknown tencent error code")
    outcome, reason, detail, retry_after = known
    return Result(outcome, reason, code, detail, retry_after)


def result_from_answer(response: httpx.Response) -> Result:
    try:
        answer = response.json()["Response"]
        if "Error" in answer:
            return result_from_code(str(answer["Error"]["Code"]))
        code = answer["SendStatusSet"][0]["Code"]
        if not isinstance(code, str):
            raise TypeError(code)
    except (ValueError, KeyError, IndexError, TypeError):
        return result_from_status(response) or Result(Outcome.retry, Reason.server, None, "malformed answer")
    return delivered(code) if code == "Ok" else result_from_code(code)


class TencentSmsChannel:
    name = "sms"

    def __init__(
        self,
        client: httpx.Client,
        secret_id: str,
        secret_key: str,
        app_id: str,
        sign_name: str,
        template_id: str,
        region: str = "ap-guangzhou",
        base_url: str = DEFAULT_BASE_URL,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = app_id
        self._sign_name = sign_name
        self._template_id = template_id
        self._region = region
        self._url = httpx.URL(base_url.rstrip("/") + "/")
        self._clock = clock
        self._timeout = timeout

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        if not (
            self._secret_id and self._secret_key and self._app_id and self._sign_name and self._template_id
        ):
            return not_configured("tencent sms credentials")
        if not address.get("phone"):
            return not_configured("sms contact phone")
        phone = phone_number(address["phone"])
        if phone is None:
            return Result(Outcome.permanent, Reason.recipient, None, "phone number is not valid")
        if len(message.sms_params) != 4:
            return Result(Outcome.permanent, Reason.client, None, "message has no sms template parameters")

        body = {
            "PhoneNumberSet": [phone],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": self._template_id,
            "TemplateParamSet": list(message.sms_params),
            "SessionContext": message.event_id,
        }
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(self._clock())
        signed = {"content-type": CONTENT_TYPE, "host": self._url.netloc.decode(), "x-tc-action": ACTION}
        scope = f"{credential_date(timestamp)}/{SERVICE}/tc3_request"
        digest = signature(self._secret_key, SERVICE, timestamp, canonical_request(signed, payload))
        headers = {
            "Authorization": (
                f"TC3-HMAC-SHA256 Credential={self._secret_id}/{scope}, "
                f"SignedHeaders={';'.join(signed)}, Signature={digest}"
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": signed["host"],
            "X-TC-Action": ACTION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": API_VERSION,
            "X-TC-Region": self._region,
            "User-Agent": "Relay-SMS/1",
        }
        try:
            response = self._client.post(self._url, content=payload, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return result_from_exception(exc)
        return result_from_answer(response)
