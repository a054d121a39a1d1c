"""The DingTalk robot channel: its errcode table with MockTransport, its wire format against a
local robot that verifies the sign over a real socket, and that no secret ever leaks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest
from vendors.dingtalk_server import DingTalkServer

from adapters.base import Message, Outcome, Reason, Result
from adapters.dingtalk import DingTalkChannel

NOW = 1795572000.0  # 2026-11-25T10:00:00+08:00
SECRET = "SEC-robot-secret-0d9f3c"
NURSE_SECRET = "SEC-nurse-robot-77aa10"
TOKEN = "robot-token-5be1"
LINK = "https://relay.example.cn/a/xyz"

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
    sms_params=("三年级2班", "张同学", "身体不适", "xyz"),
)
SECRETS = {"RELAY_DINGTALK_SECRET": SECRET, "RELAY_DINGTALK_SECRET_NURSE": NURSE_SECRET}
ROBOT_URL = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"


def expect(result: Result, outcome: Outcome, reason: Reason) -> None:
    """The retry-table check: one row, one outcome and reason."""
    assert (result.outcome, result.reason) == (outcome, reason), result


def assert_no_leak(result: Result, *secrets: str) -> None:
    text = f"{result.vendor_code} {result.detail}"
    for secret in secrets:
        for form in {secret, quote_plus(secret)}:
            assert form not in text, f"{result} leaks a secret"


def mock_channel(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> DingTalkChannel:
    return DingTalkChannel(
        httpx.Client(transport=httpx.MockTransport(handler)), SECRETS, clock=lambda: NOW, **kwargs
    )


def answering(errcode: int, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json={"errcode": errcode, "errmsg": "whatever"})


# --- the errcode table ------------------------------------------------------------------------

ERRCODE_TABLE = [
    (0, Outcome.delivered, Reason.ok),
    (130101, Outcome.retry, Reason.rate_limited),
    (410100, Outcome.retry, Reason.rate_limited),
    (-1, Outcome.retry, Reason.server),
    (310000, Outcome.permanent, Reason.auth),
    (300001, Outcome.permanent, Reason.auth),
    (400101, Outcome.permanent, Reason.auth),
    (400013, Outcome.permanent, Reason.recipient),
    (400102, Outcome.permanent, Reason.recipient),
    (40035, Outcome.permanent, Reason.client),
    (430102, Outcome.permanent, Reason.client),
    (987654, Outcome.permanent, Reason.client),  # unknown codes are permanent
]


@pytest.mark.parametrize(("errcode", "outcome", "reason"), ERRCODE_TABLE)
def test_errcode_table(errcode: int, outcome: Outcome, reason: Reason) -> None:
    result = mock_channel(answering(errcode)).send(MESSAGE, {"url": ROBOT_URL})
    expect(result, outcome, reason)
    assert result.vendor_code == str(errcode)


def test_too_fast_says_when_to_come_back() -> None:
    # Past 20 messages a minute the robot is throttled for ten minutes.
    assert mock_channel(answering(130101)).send(MESSAGE, {"url": ROBOT_URL}).retry_after == 600.0


STATUS_TABLE = [
    (httpx.Response(502, text="<html>502 Bad Gateway</html>"), Outcome.retry, Reason.server),
    (httpx.Response(429, text="slow down"), Outcome.retry, Reason.rate_limited),
    (httpx.Response(404, text="not found"), Outcome.permanent, Reason.client),
    (httpx.Response(200, text="<html>maintenance</html>"), Outcome.retry, Reason.server),
    (httpx.Response(200, json={"errmsg": "no code"}), Outcome.retry, Reason.server),
]


@pytest.mark.parametrize(("response", "outcome", "reason"), STATUS_TABLE)
def test_answers_that_are_not_dingtalk_json(
    response: httpx.Response, outcome: Outcome, reason: Reason
) -> None:
    expect(mock_channel(lambda request: response).send(MESSAGE, {"url": ROBOT_URL}), outcome, reason)


@pytest.mark.parametrize(
    ("error", "reason"),
    [(httpx.ReadTimeout("timed out"), Reason.timeout), (httpx.ConnectError("refused"), Reason.server)],
)
def test_transport_errors_are_retried(error: httpx.HTTPError, reason: Reason) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    expect(mock_channel(fail).send(MESSAGE, {"url": ROBOT_URL}), Outcome.retry, reason)


# --- the wire format --------------------------------------------------------------------------


def capture() -> tuple[list[httpx.Request], Callable[[httpx.Request], httpx.Response]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    return seen, handler


def test_signs_the_robot_url_with_timestamp_and_sign() -> None:
    seen, handler = capture()
    mock_channel(handler).send(MESSAGE, {"url": ROBOT_URL})
    query = parse_qs(urlsplit(str(seen[0].url)).query)
    assert query["access_token"] == [TOKEN]
    assert query["timestamp"] == [str(int(NOW * 1000))]
    string_to_sign = f"{int(NOW * 1000)}\n{SECRET}".encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]
    assert seen[0].method == "POST"
    assert seen[0].headers["content-type"].startswith("application/json")


def test_an_action_card_opens_the_acknowledgement_link() -> None:
    seen, handler = capture()
    mock_channel(handler).send(MESSAGE, {"url": ROBOT_URL})
    document = json.loads(seen[0].content)
    assert document["msgtype"] == "actionCard"
    assert document["actionCard"]["title"] == MESSAGE.title
    assert document["actionCard"]["singleURL"] == LINK
    assert MESSAGE.body in document["actionCard"]["text"]


def test_without_a_link_it_is_markdown() -> None:
    seen, handler = capture()
    message = Message(**{**MESSAGE.__dict__, "link": None})
    mock_channel(handler).send(message, {"url": ROBOT_URL})
    document = json.loads(seen[0].content)
    assert document["msgtype"] == "markdown"
    assert document["markdown"]["title"] == MESSAGE.title


def test_a_contact_may_name_its_own_secret() -> None:
    seen, handler = capture()
    mock_channel(handler).send(MESSAGE, {"url": ROBOT_URL, "secret_env": "RELAY_DINGTALK_SECRET_NURSE"})
    string_to_sign = f"{int(NOW * 1000)}\n{NURSE_SECRET}".encode()
    expected = base64.b64encode(
        hmac.new(NURSE_SECRET.encode(), string_to_sign, hashlib.sha256).digest()
    ).decode()
    assert parse_qs(urlsplit(str(seen[0].url)).query)["sign"] == [expected]


def test_secrets_may_be_a_lookup_function() -> None:
    seen, handler = capture()
    channel = DingTalkChannel(
        httpx.Client(transport=httpx.MockTransport(handler)), SECRETS.get, clock=lambda: NOW
    )
    assert channel.send(MESSAGE, {"url": ROBOT_URL}).delivered


@pytest.mark.parametrize(
    "address",
    [
        {"url": ROBOT_URL, "secret_env": "RELAY_DINGTALK_SECRET_GATE"},  # named, but not set
        {"url": ROBOT_URL, "secret_env": "RELAY_SECRET_KEY"},  # not a DingTalk secret: refused
        {"secret_env": "RELAY_DINGTALK_SECRET"},  # no url
    ],
)
def test_missing_configuration_sends_nothing(address: dict[str, str]) -> None:
    seen, handler = capture()
    result = mock_channel(handler).send(MESSAGE, address)
    expect(result, Outcome.permanent, Reason.not_configured)
    assert seen == []
    assert_no_leak(result, TOKEN, SECRET)


def test_no_default_secret_is_not_configured() -> None:
    seen, handler = capture()
    channel = DingTalkChannel(httpx.Client(transport=httpx.MockTransport(handler)), {}, clock=lambda: NOW)
    expect(channel.send(MESSAGE, {"url": ROBOT_URL}), Outcome.permanent, Reason.not_configured)
    assert seen == []


# --- against a local robot, over a real socket ------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


def real_channel(
    client: httpx.Client, secret: str = SECRET, clock: float = NOW, timeout: float = 2.0
) -> DingTalkChannel:
    return DingTalkChannel(client, {"RELAY_DINGTALK_SECRET": secret}, clock=lambda: clock, timeout=timeout)


def test_the_robot_verifies_the_sign_and_gets_the_card(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, keywords=("紧急",), clock=lambda: NOW) as robot:
        result = real_channel(client).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.delivered, Reason.ok)
    assert robot.delivered[0]["actionCard"]["singleURL"] == LINK
    assert robot.received[0].query["timestamp"] == str(int(NOW * 1000))


def test_a_wrong_secret_is_refused_for_good(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        result = real_channel(client, secret="SEC-not-the-robots").send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.permanent, Reason.auth)
    assert result.vendor_code == "310000"
    assert robot.delivered == []


def test_a_clock_an_hour_off_is_refused(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        result = real_channel(client, clock=NOW - 3601).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.permanent, Reason.auth)


def test_an_unknown_token_is_refused_for_good(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        url = robot.robot_url.replace(TOKEN, "robot-token-gone")
        result = real_channel(client).send(MESSAGE, {"url": url})
    expect(result, Outcome.permanent, Reason.auth)
    assert result.vendor_code == "300001"


def test_a_missing_keyword_is_refused(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, keywords=("告警",), clock=lambda: NOW) as robot:
        result = real_channel(client).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.permanent, Reason.auth)


def test_past_the_rate_limit_it_is_retried_later(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, rate_limit_after=2, clock=lambda: NOW) as robot:
        channel = real_channel(client)
        results = [channel.send(MESSAGE, {"url": robot.robot_url}) for _ in range(3)]
    assert [r.outcome for r in results] == [Outcome.delivered, Outcome.delivered, Outcome.retry]
    expect(results[2], Outcome.retry, Reason.rate_limited)
    assert results[2].retry_after == 600.0


def test_a_disbanded_group_is_permanent(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        robot.fail_next(400013, "群已被解散")
        result = real_channel(client).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.permanent, Reason.recipient)


def test_a_slow_robot_is_a_timeout(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        robot.delay = 2.0
        result = real_channel(client, timeout=0.2).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.retry, Reason.timeout)


def test_a_cut_off_answer_is_retried(client: httpx.Client) -> None:
    with DingTalkServer(access_token=TOKEN, secret=SECRET, clock=lambda: NOW) as robot:
        robot.malformed = True
        result = real_channel(client).send(MESSAGE, {"url": robot.robot_url})
    expect(result, Outcome.retry, Reason.server)


def test_no_result_ever_carries_a_secret(client: httpx.Client) -> None:
    results: list[Result] = []
    with DingTalkServer(access_token=TOKEN, secret=SECRET, rate_limit_after=1, clock=lambda: NOW) as robot:
        results.append(real_channel(client).send(MESSAGE, {"url": robot.robot_url}))
        results.append(real_channel(client).send(MESSAGE, {"url": robot.robot_url}))  # rate limited
        results.append(real_channel(client, secret="SEC-wrong").send(MESSAGE, {"url": robot.robot_url}))
        results.append(real_channel(client).send(MESSAGE, {"url": robot.robot_url + "x"}))
        robot.malformed = True
        results.append(real_channel(client).send(MESSAGE, {"url": robot.robot_url}))
        robot.malformed, robot.delay = False, 1.0
        results.append(real_channel(client, timeout=0.1).send(MESSAGE, {"url": robot.robot_url}))
        signs = [r.query.get("sign", "") for r in robot.received]
        robot_url = robot.robot_url

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    results.append(mock_channel(refuse).send(MESSAGE, {"url": ROBOT_URL}))
    assert len({r.outcome for r in results}) == 3
    for result in results:
        assert_no_leak(result, SECRET, TOKEN, robot_url, ROBOT_URL, LINK, *filter(None, signs))
