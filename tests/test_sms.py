"""The SMS channels (Alibaba Cloud and Tencent Cloud): the vendors' published signature examples,
their code tables with MockTransport, and their wire formats against local endpoints that verify
the signatures over a real socket — and that no phone number, key or signature ever leaks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from vendors.aliyun_sms_server import AliyunSmsServer
from vendors.tencent_sms_server import TencentSmsServer

from adapters import sms_aliyun, sms_tencent
from adapters.base import Message, Outcome, Reason, Result
from adapters.sms_aliyun import AliyunSmsChannel
from adapters.sms_tencent import TencentSmsChannel

NOW = 1795572000.0  # 2026-11-25T10:00:00+08:00
LINK = "https://relay.example.cn/a/Xy7kQ2mN9pLw"
CODE = LINK.rsplit("/", 1)[1]  # what the SMS carries: the template holds https://relay.example.cn/a/
PHONE = "+86 138 0013 8000"
DIGITS = "13800138000"
ALIYUN_ID, ALIYUN_SECRET = "LTAI-relay-test", "aliyun-secret-7c1e"
TENCENT_ID, TENCENT_KEY = "AKID-relay-test", "tencent-secret-3b9d"
SIGN_NAME, ALIYUN_TEMPLATE, TENCENT_TEMPLATE, APP_ID = "兴城一小", "SMS_480001", "2000001", "1400000001"

MESSAGE = Message(
    event="request.urgent",
    event_id="ev-1",
    attempt=1,
    sent_at="2026-11-25T10:00:00+08:00",
    urgency="P0",
    title="三年级2班 张同学 身体不适（紧急）",
    body=f"三年级2班 张同学 身体不适（紧急）请点击确认 {LINK}",
    link=LINK,
    recipient={"id": "t-nurse", "name": "刘校医", "role": "nurse"},
    sms_params=("三年级2班", "张同学", "身体不适", CODE),
)
ADDRESS = {"phone": PHONE}


def expect(result: Result, outcome: Outcome, reason: Reason) -> None:
    """The retry-table check: one row, one outcome and reason."""
    assert (result.outcome, result.reason) == (outcome, reason), result


def assert_no_leak(result: Result, *secrets: str) -> None:
    text = f"{result.vendor_code} {result.detail}"
    for secret in (DIGITS, DIGITS[-8:], *secrets):
        assert secret not in text, f"{result} leaks {secret!r}"


# --- the vendors' published examples ----------------------------------------------------------


def test_aliyun_signature_matches_the_documented_sendsms_example() -> None:
    # help.aliyun.com/document_detail/56189: the SendSms signing example, URL included.
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    signature = sms_aliyun.sign(params, "testSecret")
    assert signature == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    query = f"Signature={sms_aliyun.percent_encode(signature)}&{sms_aliyun.canonical_query(params)}"
    assert query == (
        "Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D&AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123"
        "&PhoneNumbers=15300000001&RegionId=cn-hangzhou"
        "&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8"
        "&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0"
        "&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D"
        "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
    )


def test_aliyun_signature_matches_the_documented_rpc_example() -> None:
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert sms_aliyun.sign(params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_percent_encoding_follows_pop_rules() -> None:
    assert sms_aliyun.percent_encode("a b*~/+=") == "a%20b%2A~%2F%2B%3D"


def test_tencent_signature_matches_the_documented_example() -> None:
    # The TC3-HMAC-SHA256 walk-through in Tencent's "签名方法 v3" (CVM DescribeInstances, POST JSON).
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    headers = {"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"}
    canonical = sms_tencent.canonical_request(headers, payload)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert sms_tencent.signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm", 1551113065, canonical) == (
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


@pytest.mark.parametrize(
    ("given", "aliyun", "tencent"),
    [
        ("+86 138 0013 8000", "13800138000", "+8613800138000"),
        ("13800138000", "13800138000", "+8613800138000"),
        ("0086-138-0013-8000", "13800138000", "+8613800138000"),
        ("+852 6123 4567", "85261234567", "+85261234567"),
        ("call me", None, None),
    ],
)
def test_phone_numbers_in_each_vendors_form(given: str, aliyun: str | None, tencent: str | None) -> None:
    assert sms_aliyun.phone_number(given) == aliyun
    assert sms_tencent.phone_number(given) == tencent


# --- Alibaba: the code table ------------------------------------------------------------------


def aliyun_mock(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> AliyunSmsChannel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return AliyunSmsChannel(
        client, ALIYUN_ID, ALIYUN_SECRET, SIGN_NAME, ALIYUN_TEMPLATE, clock=lambda: NOW, **kwargs
    )


ALIYUN_TABLE = [
    (200, "OK", "OK", Outcome.delivered, Reason.ok),
    (200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", Outcome.retry, Reason.rate_limited),
    (200, "isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10", Outcome.permanent, Reason.recipient),
    (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", Outcome.permanent, Reason.recipient),
    (200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法", Outcome.permanent, Reason.client),
    (200, "isv.SMS_SIGNATURE_ILLEGAL", "签名不合法", Outcome.permanent, Reason.client),
    (200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量", Outcome.permanent, Reason.client),
    (200, "isv.PARAM_NOT_SUPPORT_URL", "不支持url为变量", Outcome.permanent, Reason.client),
    (200, "isv.AMOUNT_NOT_ENOUGH", "余额不足", Outcome.permanent, Reason.client),
    (200, "isp.SYSTEM_ERROR", "系统错误", Outcome.retry, Reason.server),
    (
        404,
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
        Outcome.permanent,
        Reason.auth,
    ),
    (400, "SignatureDoesNotMatch", "Specified signature is not matched", Outcome.permanent, Reason.auth),
    (400, "InvalidTimeStamp.Expired", "expired", Outcome.permanent, Reason.auth),
    (
        400,
        "Throttling.User",
        "Request was denied due to user flow control.",
        Outcome.retry,
        Reason.rate_limited,
    ),
    (
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure",
        Outcome.retry,
        Reason.server,
    ),
    (200, "isv.SOMETHING_NEW", "?", Outcome.permanent, Reason.client),  # unknown codes are permanent
]


@pytest.mark.parametrize(("status", "code", "message", "outcome", "reason"), ALIYUN_TABLE)
def test_aliyun_code_table(status: int, code: str, message: str, outcome: Outcome, reason: Reason) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"Code": code, "Message": message, "RequestId": "r-1"})

    result = aliyun_mock(answer).send(MESSAGE, ADDRESS)
    expect(result, outcome, reason)
    assert result.vendor_code == code


# --- Tencent: the code table ------------------------------------------------------------------


def tencent_mock(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> TencentSmsChannel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return TencentSmsChannel(
        client, TENCENT_ID, TENCENT_KEY, APP_ID, SIGN_NAME, TENCENT_TEMPLATE, clock=lambda: NOW, **kwargs
    )


TENCENT_TABLE = [
    # per number, in SendStatusSet
    (False, "Ok", Outcome.delivered, Reason.ok),
    (False, "LimitExceeded.PhoneNumberThirtySecondLimit", Outcome.retry, Reason.rate_limited),
    (False, "LimitExceeded.PhoneNumberDailyLimit", Outcome.permanent, Reason.recipient),
    (False, "LimitExceeded.PhoneNumberOneHourLimit", Outcome.permanent, Reason.recipient),
    (False, "InvalidParameterValue.IncorrectPhoneNumber", Outcome.permanent, Reason.recipient),
    (False, "FailedOperation.PhoneNumberInBlacklist", Outcome.permanent, Reason.recipient),
    (False, "FailedOperation.InsufficientBalanceInSmsPackage", Outcome.permanent, Reason.client),
    # the whole request, in Error
    (True, "RequestLimitExceeded", Outcome.retry, Reason.rate_limited),
    (True, "InternalError.OtherError", Outcome.retry, Reason.server),
    (True, "InternalError.Timeout", Outcome.retry, Reason.timeout),
    (True, "AuthFailure.SignatureFailure", Outcome.permanent, Reason.auth),
    (True, "AuthFailure.SecretIdNotFound", Outcome.permanent, Reason.auth),
    (True, "UnauthorizedOperation.SmsSdkAppIdVerifyFail", Outcome.permanent, Reason.auth),
    (True, "FailedOperation.TemplateIncorrectOrUnapproved", Outcome.permanent, Reason.client),
    (True, "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", Outcome.permanent, Reason.client),
    (True, "ResourceNotFound.Something", Outcome.permanent, Reason.client),  # unknown codes are permanent
]


@pytest.mark.parametrize(("whole_request", "code", "outcome", "reason"), TENCENT_TABLE)
def test_tencent_code_table(whole_request: bool, code: str, outcome: Outcome, reason: Reason) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if whole_request:
            return httpx.Response(
                200, json={"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}}
            )
        status = {
            "SerialNo": "",
            "PhoneNumber": "+8613800138000",
            "Code": code,
            "Message": "m",
            "IsoCode": "CN",
        }
        return httpx.Response(200, json={"Response": {"SendStatusSet": [status], "RequestId": "r"}})

    result = tencent_mock(answer).send(MESSAGE, ADDRESS)
    expect(result, outcome, reason)
    assert result.vendor_code == code
    assert_no_leak(result)


def test_tencent_thirty_second_limit_says_when_to_come_back() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        status = {"Code": "LimitExceeded.PhoneNumberThirtySecondLimit", "Message": "m"}
        return httpx.Response(200, json={"Response": {"SendStatusSet": [status], "RequestId": "r"}})

    assert tencent_mock(answer).send(MESSAGE, ADDRESS).retry_after == 30.0


# --- both: answers that are not the vendor's, transport errors, missing configuration --------

NOT_VENDOR_JSON = [
    (httpx.Response(502, text="<html>502 Bad Gateway</html>"), Outcome.retry, Reason.server),
    (httpx.Response(429, text="slow down"), Outcome.retry, Reason.rate_limited),
    (httpx.Response(200, text="<html>maintenance</html>"), Outcome.retry, Reason.server),
    (httpx.Response(200, json={"Response": {}}), Outcome.retry, Reason.server),
    (httpx.Response(200, json=[]), Outcome.retry, Reason.server),
]
CHANNELS: dict[str, Callable[..., AliyunSmsChannel | TencentSmsChannel]] = {
    "aliyun": aliyun_mock,
    "tencent": tencent_mock,
}


@pytest.mark.parametrize("vendor", CHANNELS)
@pytest.mark.parametrize(("response", "outcome", "reason"), NOT_VENDOR_JSON)
def test_answers_that_are_not_the_vendors_json(
    vendor: str, response: httpx.Response, outcome: Outcome, reason: Reason
) -> None:
    expect(CHANNELS[vendor](lambda request: response).send(MESSAGE, ADDRESS), outcome, reason)


@pytest.mark.parametrize("vendor", CHANNELS)
@pytest.mark.parametrize(
    ("error", "reason"),
    [(httpx.ReadTimeout("timed out"), Reason.timeout), (httpx.ConnectError("refused"), Reason.server)],
)
def test_transport_errors_are_retried(vendor: str, error: httpx.HTTPError, reason: Reason) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    expect(CHANNELS[vendor](fail).send(MESSAGE, ADDRESS), Outcome.retry, reason)


@pytest.mark.parametrize("vendor", CHANNELS)
@pytest.mark.parametrize(
    ("message", "address", "reason"),
    [
        (MESSAGE, {}, Reason.not_configured),
        (MESSAGE, {"phone": "call the office"}, Reason.recipient),
        (Message(**{**MESSAGE.__dict__, "sms_params": ()}), ADDRESS, Reason.client),
    ],
)
def test_nothing_is_sent_without_what_the_template_needs(
    vendor: str, message: Message, address: dict[str, str], reason: Reason
) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    channel = CHANNELS[vendor](record)
    expect(channel.send(message, address), Outcome.permanent, reason)
    assert seen == []


def test_missing_credentials_are_not_configured() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    aliyun = AliyunSmsChannel(client, "", "", SIGN_NAME, ALIYUN_TEMPLATE)
    tencent = TencentSmsChannel(client, TENCENT_ID, TENCENT_KEY, "", SIGN_NAME, TENCENT_TEMPLATE)
    expect(aliyun.send(MESSAGE, ADDRESS), Outcome.permanent, Reason.not_configured)
    expect(tencent.send(MESSAGE, ADDRESS), Outcome.permanent, Reason.not_configured)


# --- against local endpoints, over a real socket ----------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


def aliyun(client: httpx.Client, server: AliyunSmsServer, **kwargs: Any) -> AliyunSmsChannel:
    options: dict[str, Any] = {"clock": lambda: NOW, "base_url": server.base_url, "timeout": 2.0, **kwargs}
    key_id = str(options.pop("access_key_id", ALIYUN_ID))
    secret = str(options.pop("access_key_secret", ALIYUN_SECRET))
    return AliyunSmsChannel(client, key_id, secret, SIGN_NAME, ALIYUN_TEMPLATE, **options)


def tencent(client: httpx.Client, server: TencentSmsServer, **kwargs: Any) -> TencentSmsChannel:
    options: dict[str, Any] = {"clock": lambda: NOW, "base_url": server.base_url, "timeout": 2.0, **kwargs}
    secret_id = str(options.pop("secret_id", TENCENT_ID))
    secret_key = str(options.pop("secret_key", TENCENT_KEY))
    return TencentSmsChannel(
        client,
        secret_id,
        secret_key,
        APP_ID,
        SIGN_NAME,
        TENCENT_TEMPLATE,
        **options,
    )


def aliyun_server(**kwargs: Any) -> AliyunSmsServer:
    return AliyunSmsServer(ALIYUN_ID, ALIYUN_SECRET, SIGN_NAME, ALIYUN_TEMPLATE, clock=lambda: NOW, **kwargs)


def tencent_server(**kwargs: Any) -> TencentSmsServer:
    return TencentSmsServer(
        TENCENT_ID,
        TENCENT_KEY,
        APP_ID,
        SIGN_NAME,
        TENCENT_TEMPLATE,
        clock=lambda: NOW,
        **kwargs,
    )


def test_aliyun_delivers_a_verified_request_with_named_params_in_order(client: httpx.Client) -> None:
    with aliyun_server() as server:
        result = aliyun(client, server).send(MESSAGE, ADDRESS)
    expect(result, Outcome.delivered, Reason.ok)
    sent = server.sent[0]
    assert sent["PhoneNumbers"] == DIGITS
    assert sent["OutId"] == "ev-1"
    assert sent["Timestamp"] == "2026-11-25T02:00:00Z"
    assert sent["RegionId"] == "cn-hangzhou"
    assert list(json.loads(sent["TemplateParam"]).items()) == [
        ("class", "三年级2班"),
        ("name", "张同学"),
        ("category", "身体不适"),
        ("link", CODE),
    ]
    raw = dict(parse_qsl(urlsplit("/?" + server.received[0].raw_query).query))
    assert raw["Signature"] == server.received[0].params["Signature"]


def test_tencent_delivers_a_verified_request_with_params_in_order(client: httpx.Client) -> None:
    with tencent_server() as server:
        result = tencent(client, server).send(MESSAGE, ADDRESS)
    expect(result, Outcome.delivered, Reason.ok)
    sent = server.sent[0]
    assert sent["PhoneNumberSet"] == ["+8613800138000"]
    assert sent["TemplateParamSet"] == ["三年级2班", "张同学", "身体不适", CODE]
    assert sent["SmsSdkAppId"] == APP_ID and sent["TemplateId"] == TENCENT_TEMPLATE
    headers = server.received[0].headers
    assert headers["x-tc-action"] == "SendSms" and headers["x-tc-version"] == "2021-01-11"
    assert headers["x-tc-region"] == "ap-guangzhou"
    assert headers["authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={TENCENT_ID}/2026-11-25/sms/tc3_request"
    )


def test_past_the_rate_limit_sms_is_retried(client: httpx.Client) -> None:
    with aliyun_server(rate_limit_after=1) as a_server, tencent_server(rate_limit_after=1) as t_server:
        a_channel, t_channel = aliyun(client, a_server), tencent(client, t_server)
        a_results = [a_channel.send(MESSAGE, ADDRESS) for _ in range(2)]
        t_results = [t_channel.send(MESSAGE, ADDRESS) for _ in range(2)]
    for results in (a_results, t_results):
        expect(results[0], Outcome.delivered, Reason.ok)
        expect(results[1], Outcome.retry, Reason.rate_limited)
    assert a_results[1].vendor_code == "isv.BUSINESS_LIMIT_CONTROL"
    assert t_results[1].vendor_code == "RequestLimitExceeded"


def test_a_bad_number_is_permanent(client: httpx.Client) -> None:
    bad = {"phone": "+86 123 4567"}
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_result = aliyun(client, a_server).send(MESSAGE, bad)
        t_result = tencent(client, t_server).send(MESSAGE, bad)
    expect(a_result, Outcome.permanent, Reason.recipient)
    expect(t_result, Outcome.permanent, Reason.recipient)
    assert (a_result.vendor_code, t_result.vendor_code) == (
        "isv.MOBILE_NUMBER_ILLEGAL",
        "InvalidParameterValue.IncorrectPhoneNumber",
    )


def test_a_daily_limit_on_one_number_is_permanent(client: httpx.Client) -> None:
    with tencent_server() as server:
        server.fail_next("LimitExceeded.PhoneNumberDailyLimit", per_number=True)
        result = tencent(client, server).send(MESSAGE, ADDRESS)
    expect(result, Outcome.permanent, Reason.recipient)


@pytest.mark.parametrize(
    ("aliyun_kwargs", "tencent_kwargs", "codes"),
    [
        (
            {"access_key_secret": "not-the-secret"},
            {"secret_key": "not-the-key"},
            ("SignatureDoesNotMatch", "AuthFailure.SignatureFailure"),
        ),
        (
            {"access_key_id": "LTAI-unknown"},
            {"secret_id": "AKID-unknown"},
            ("InvalidAccessKeyId.NotFound", "AuthFailure.SecretIdNotFound"),
        ),
        (
            {"clock": lambda: NOW - 3600},
            {"clock": lambda: NOW - 3600},
            ("InvalidTimeStamp.Expired", "AuthFailure.SignatureExpire"),
        ),
    ],
)
def test_bad_credentials_are_permanent_auth(
    client: httpx.Client,
    aliyun_kwargs: dict[str, object],
    tencent_kwargs: dict[str, object],
    codes: tuple[str, str],
) -> None:
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_result = aliyun(client, a_server, **aliyun_kwargs).send(MESSAGE, ADDRESS)
        t_result = tencent(client, t_server, **tencent_kwargs).send(MESSAGE, ADDRESS)
    expect(a_result, Outcome.permanent, Reason.auth)
    expect(t_result, Outcome.permanent, Reason.auth)
    assert (a_result.vendor_code, t_result.vendor_code) == codes
    assert a_server.sent == [] and t_server.sent == []


def test_aliyun_refuses_a_reused_nonce_and_a_fresh_one_goes_through(client: httpx.Client) -> None:
    with aliyun_server() as server:
        expect(
            aliyun(client, server, nonce=lambda: "n-1").send(MESSAGE, ADDRESS), Outcome.delivered, Reason.ok
        )
        expect(
            aliyun(client, server, nonce=lambda: "n-1").send(MESSAGE, ADDRESS), Outcome.retry, Reason.server
        )
        expect(
            aliyun(client, server, nonce=lambda: "n-2").send(MESSAGE, ADDRESS), Outcome.delivered, Reason.ok
        )


def with_params(*params: str) -> Message:
    return Message(**{**MESSAGE.__dict__, "sms_params": params})


def test_a_whole_link_in_a_variable_is_refused_for_good(client: httpx.Client) -> None:
    # Both vendors let a variable carry only a link's parameter: the template holds the fixed part.
    short_url = "www.x.cn/a"  # within both vendors' length limits: refused as a URL
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_result = aliyun(client, a_server).send(with_params("三年级2班", "张同学", "身体不适", short_url), ADDRESS)
        t_result = tencent(client, t_server).send(with_params("三年级2班", "张同学", "身体不适", short_url), ADDRESS)
    expect(a_result, Outcome.permanent, Reason.client)
    expect(t_result, Outcome.permanent, Reason.client)
    assert (a_result.vendor_code, t_result.vendor_code) == (
        "isv.PARAM_NOT_SUPPORT_URL", "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter")


def test_a_variable_over_the_vendors_length_is_refused_for_good(client: httpx.Client) -> None:
    # Alibaba: 35 characters per variable (a Chinese character counts one); Tencent: 12 for an
    # individually verified account, none for an enterprise one.
    with aliyun_server() as a_server, tencent_server() as t_server, \
            tencent_server(max_param_chars=None) as enterprise:
        at_limit = aliyun(client, a_server).send(with_params("班" * 35, "张同学", "身体不适", CODE), ADDRESS)
        over = aliyun(client, a_server).send(with_params("班" * 36, "张同学", "身体不适", CODE), ADDRESS)
        t_over = tencent(client, t_server).send(with_params("班" * 13, "张同学", "身体不适", CODE), ADDRESS)
        t_enterprise = tencent(client, enterprise).send(with_params("班" * 35, "张同学", "身体不适", CODE), ADDRESS)
    expect(at_limit, Outcome.delivered, Reason.ok)
    expect(over, Outcome.permanent, Reason.client)
    assert over.vendor_code == "isv.PARAM_LENGTH_LIMIT"
    expect(t_over, Outcome.permanent, Reason.client)
    assert t_over.vendor_code == "InvalidParameterValue.TemplateParameterLengthLimit"
    expect(t_enterprise, Outcome.delivered, Reason.ok)


def test_a_slow_vendor_is_a_timeout(client: httpx.Client) -> None:
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_server.delay = t_server.delay = 2.0
        a_result = aliyun(client, a_server, timeout=0.2).send(MESSAGE, ADDRESS)
        t_result = tencent(client, t_server, timeout=0.2).send(MESSAGE, ADDRESS)
    expect(a_result, Outcome.retry, Reason.timeout)
    expect(t_result, Outcome.retry, Reason.timeout)


def test_a_cut_off_answer_is_retried(client: httpx.Client) -> None:
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_server.malformed = t_server.malformed = True
        a_result = aliyun(client, a_server).send(MESSAGE, ADDRESS)
        t_result = tencent(client, t_server).send(MESSAGE, ADDRESS)
    expect(a_result, Outcome.retry, Reason.server)
    expect(t_result, Outcome.retry, Reason.server)


def test_platform_throttling_is_retried(client: httpx.Client) -> None:
    with aliyun_server() as a_server, tencent_server() as t_server:
        a_server.fail_next("Throttling.User", "Request was denied due to user flow control.", status=400)
        t_server.fail_next("InternalError.OtherError")
        expect(aliyun(client, a_server).send(MESSAGE, ADDRESS), Outcome.retry, Reason.rate_limited)
        expect(tencent(client, t_server).send(MESSAGE, ADDRESS), Outcome.retry, Reason.server)


def test_no_result_ever_carries_a_phone_a_key_or_a_signature(client: httpx.Client) -> None:
    results: list[Result] = []
    with aliyun_server(rate_limit_after=1) as a_server, tencent_server(rate_limit_after=1) as t_server:
        for kwargs in (
            {},
            {},
            {"access_key_secret": "wrong"},
            {"access_key_id": "LTAI-x"},
            {"clock": lambda: 0.0},
        ):
            results.append(aliyun(client, a_server, **kwargs).send(MESSAGE, ADDRESS))
        for kwargs in ({}, {}, {"secret_key": "wrong"}, {"secret_id": "AKID-x"}, {"clock": lambda: 0.0}):
            results.append(tencent(client, t_server, **kwargs).send(MESSAGE, ADDRESS))
        a_server.malformed = t_server.malformed = True
        results.append(aliyun(client, a_server).send(MESSAGE, ADDRESS))
        results.append(tencent(client, t_server).send(MESSAGE, ADDRESS))
        a_server.malformed = t_server.malformed = False
        a_server.delay = t_server.delay = 1.0
        results.append(aliyun(client, a_server, timeout=0.1).send(MESSAGE, ADDRESS))
        results.append(tencent(client, t_server, timeout=0.1).send(MESSAGE, ADDRESS))
        signatures = [r.params.get("Signature", "") for r in a_server.received]
        signatures += [
            r.headers.get("authorization", "").rpartition("Signature=")[2] for r in t_server.received
        ]

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    results += [aliyun_mock(refuse).send(MESSAGE, ADDRESS), tencent_mock(refuse).send(MESSAGE, ADDRESS)]
    assert {r.outcome for r in results} == {Outcome.delivered, Outcome.retry, Outcome.permanent}
    for result in results:
        assert_no_leak(result, ALIYUN_SECRET, TENCENT_KEY, LINK, "wrong", *filter(None, signatures))
