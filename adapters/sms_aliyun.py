"""The SMS channel through Alibaba Cloud SMS (阿里云短信, dysmsapi SendSms, version 2017-05-25).

An RPC-style GET signed with HMAC-SHA1: every parameter but Signature, sorted by name and
percent-encoded by POP's rules (RFC 3986 unreserved characters kept, space as %20), joined,
then StringToSign = "GET&%2F&" + percentEncode(that string), keyed with access_key_secret + "&".

The urgent-alert template takes four named variables, filled from `message.sms_params` in order:

    ${class}     三年级2班
    ${name}      张同学 (the masked name, never the child's full name)
    ${category}  身体不适
    ${link}      the acknowledgement link's short code (12 characters)

so the template registered with Alibaba reads like
"${class} ${name} ${category}，请尽快点击确认 https://relay.example.cn/a/${link}", the link's fixed
part (RELAY_PUBLIC_URL/a/) in the template and ${link} declared as a link-parameter variable:
Alibaba lets a variable carry only a link's parameter (isv.PARAM_NOT_SUPPORT_URL) and caps every
variable at 35 characters (isv.PARAM_LENGTH_LIMIT), which relay/core/notices.py keeps to.

Alibaba answers HTTP 200 {"Code": "OK", "BizId": ...} or a business code, and HTTP 4xx/5xx with a
POP code (SignatureDoesNotMatch, InvalidAccessKeyId.NotFound, Throttling.User, ...). The phone
number, the keys and the signature never appear in a Result: not even the vendor's own message,
which for SignatureDoesNotMatch quotes the whole string to sign.

SendSms is not idempotent: a retry after a timeout may send a second SMS (the vendor advises
checking the receipt first); `OutId` carries the event_id so receipts can be matched.

Docs: https://help.aliyun.com/document_detail/55284.html (SendSms)
      https://help.aliyun.com/zh/sms/developer-reference/api-error-codes
      https://help.aliyun.com/document_detail/28839.html (RPC 签名机制)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import uuid
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

DEFAULT_BASE_URL = "https://dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
TEMPLATE_VARIABLES = ("class", "name", "category", "link")  # the order of message.sms_params

_RETRY_SERVER = (Outcome.retry, Reason.server)
_RATE_LIMITED = (Outcome.retry, Reason.rate_limited)
_AUTH = (Outcome.permanent, Reason.auth)
_CLIENT = (Outcome.permanent, Reason.client)
_RECIPIENT = (Outcome.permanent, Reason.recipient)

# Code -> (outcome, reason, detail). A family entry ("Throttling") covers its sub-codes
# ("Throttling.User") unless they have their own row. Unknown codes are permanent.
# https://help.aliyun.com/zh/sms/developer-reference/api-error-codes
ERROR_CODES: dict[str, tuple[Outcome, Reason, str]] = {
    "isv.BUSINESS_LIMIT_CONTROL": (*_RATE_LIMITED, "per-number flow control"),  # refined below
    "Throttling": (*_RATE_LIMITED, "api throttled"),
    "isp.SYSTEM_ERROR": (*_RETRY_SERVER, "alibaba system error"),
    "ServiceUnavailable": (*_RETRY_SERVER, "service unavailable"),
    "InternalError": (*_RETRY_SERVER, "internal error"),
    "SignatureNonceUsed": (*_RETRY_SERVER, "nonce reused"),  # a new request carries a new nonce
    "isv.MOBILE_NUMBER_ILLEGAL": (*_RECIPIENT, "phone number refused"),
    "isv.BLACK_KEY_CONTROL_LIMIT": (*_RECIPIENT, "number is on the blacklist"),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": (*_RECIPIENT, "template cannot reach domestic numbers"),
    "InvalidAccessKeyId": (*_AUTH, "access key refused"),
    "SignatureDoesNotMatch": (*_AUTH, "signature refused"),
    "InvalidTimeStamp": (*_AUTH, "timestamp refused: check the clock"),
    "Forbidden": (*_AUTH, "not authorized"),
    "isp.RAM_PERMISSION_DENY": (*_AUTH, "RAM permission denied"),
    "isv.ACCOUNT_NOT_EXISTS": (*_AUTH, "account does not exist"),
    "isv.ACCOUNT_ABNORMAL": (*_AUTH, "account abnormal"),
    "isv.PRODUCT_UN_SUBSCRIPT": (*_AUTH, "sms not subscribed"),
    "isv.PRODUCT_UNSUBSCRIBE": (*_AUTH, "sms not subscribed"),
    "isv.DENY_IP_RANGE": (*_AUTH, "source ip region refused"),
    "isv.SMS_TEMPLATE_ILLEGAL": (*_CLIENT, "template refused"),
    "isv.SMS_SIGNATURE_ILLEGAL": (*_CLIENT, "sign name refused"),
    "isv.SMS_SIGN_ILLEGAL": (*_CLIENT, "sign name refused"),
    "isv.SIGN_STATE_ILLEGAL": (*_CLIENT, "sign name not usable"),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": (*_CLIENT, "sign name does not fit the template type"),
    "isv.TEMPLATE_MISSING_PARAMETERS": (*_CLIENT, "template parameters missing"),
    "isv.TEMPLATE_PARAMS_ILLEGAL": (*_CLIENT, "template parameters refused"),
    "isv.INVALID_JSON_PARAM": (*_CLIENT, "template parameters are not json"),
    "isv.PARAM_LENGTH_LIMIT": (*_CLIENT, "template parameter too long"),
    "isv.PARAM_NOT_SUPPORT_URL": (*_CLIENT, "template variable may not carry a url"),
    "isv.SMS_CONTENT_ILLEGAL": (*_CLIENT, "content refused"),
    "isv.INVALID_PARAMETERS": (*_CLIENT, "parameters refused"),
    "isv.MOBILE_COUNT_OVER_LIMIT": (*_CLIENT, "too many numbers"),
    "isv.AMOUNT_NOT_ENOUGH": (*_CLIENT, "account balance too low"),
    "isv.OUT_OF_SERVICE": (*_CLIENT, "account out of service"),
    "isv.DAY_LIMIT_CONTROL": (*_CLIENT, "account daily quota reached"),
    "isv.MONTH_LIMIT_CONTROL": (*_CLIENT, "account monthly quota reached"),
    "MissingParameter": (*_CLIENT, "parameter missing"),
    "InvalidParameter": (*_CLIENT, "parameter refused"),
}


def percent_encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))


def sign(params: Mapping[str, str], access_key_secret: str, method: str = "GET") -> str:
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"
    digest = hmac.new(f"{access_key_secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def phone_number(phone: str) -> str | None:
    """Alibaba wants an 11-digit mainland number, or country code + number without "+" abroad."""
    digits = phone.strip().replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit():
        return None
    if len(digits) == 13 and digits.startswith("861"):
        return digits[2:]
    return digits


def lookup(code: str) -> tuple[Outcome, Reason, str] | None:
    family = code
    while True:
        if family in ERROR_CODES:
            return ERROR_CODES[family]
        if "." not in family:
            return None
        family = family.rsplit(".", 1)[0]


def result_from_answer(response: httpx.Response) -> Result:
    try:
        answer = response.json()
        code = answer["Code"]
        if not isinstance(code, str):
            raise TypeError(code)
    except (ValueError, KeyError, TypeError):
        return result_from_status(response) or Result(Outcome.retry, Reason.server, None, "malformed answer")
    if code == "OK":
        return delivered(code)
    known = lookup(code)
    if known is None:
        return Result(Outcome.permanent, Reason.client, code, "unknown alibaba error code")
    outcome, reason, detail = known
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        # One number's flow control: minute-level clears in a minute; an hour- or day-level limit
        # cannot clear within any useful backoff, so give up on this number and let relay fall back.
        message = str(answer.get("Message", "")).lower()
        if any(word in message for word in ("天级", "小时级", "day", "hour")):
            return Result(
                Outcome.permanent, Reason.recipient, code, "number reached its hourly or daily limit"
            )
        return Result(outcome, reason, code, detail, 60.0)
    return Result(outcome, reason, code, detail)


class AliyunSmsChannel:
    name = "sms"

    def __init__(
        self,
        client: httpx.Client,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_id: str,
        region: str = "cn-hangzhou",
        base_url: str = DEFAULT_BASE_URL,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: uuid.uuid4().hex,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._sign_name = sign_name
        self._template_id = template_id
        self._region = region
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._nonce = nonce
        self._timeout = timeout

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        if not (self._access_key_id and self._access_key_secret and self._sign_name and self._template_id):
            return not_configured("aliyun sms credentials")
        if not address.get("phone"):
            return not_configured("sms contact phone")
        phone = phone_number(address["phone"])
        if phone is None:
            return Result(Outcome.permanent, Reason.recipient, None, "phone number is not valid")
        if len(message.sms_params) != len(TEMPLATE_VARIABLES):
            return Result(Outcome.permanent, Reason.client, None, "message has no sms template parameters")

        template_param = dict(zip(TEMPLATE_VARIABLES, message.sms_params, strict=True))
        params = {
            "AccessKeyId": self._access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.event_id,
            "PhoneNumbers": phone,
            "RegionId": self._region,
            "SignName": self._sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "TemplateCode": self._template_id,
            "TemplateParam": json.dumps(template_param, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
        }
        signature = sign(params, self._access_key_secret)
        url = f"{self._base_url}/?Signature={percent_encode(signature)}&{canonical_query(params)}"
        try:
            response = self._client.get(url, headers={"User-Agent": "Relay-SMS/1"}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return result_from_exception(exc)
        return result_from_answer(response)
