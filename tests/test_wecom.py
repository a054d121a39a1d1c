"""WeComChannel: the errcode table over httpx.MockTransport, and the whole exchange against a
local WeCom (tests/vendors/wecom_server.py) over a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.base import Message, Outcome, Reason, Result
from adapters.wecom import ERRORS, TOKEN_ERRORS, WeComChannel, textcard
from tests.vendors.wecom_server import WeComServer

CORP_ID, SECRET, AGENT_ID = "ww-test-corp", "wecom-secret-9f2c", 1000002
TOKEN = "mock-token-5b8e0c"


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        event="request.urgent",
        event_id="ev-1",
        attempt=1,
        sent_at="2026-11-25T10:00:00+08:00",
        urgency="P0",
        title="三年级2班 张同学 身体不适（紧急）",
        body="请尽快确认并处理",
        link="https://relay.example.cn/a/xyz",
        recipient={"id": "t-wang", "name": "王老师", "role": "academic_affairs"},
    )
    return Message(**(fields | changes))


class Vendor:
    """A scripted WeCom for MockTransport: a token from gettoken, then `answers` for message/send in turn."""

    def __init__(self, *answers: dict[str, Any] | httpx.Response) -> None:
        self.answers = list(answers) or [{"errcode": 0, "errmsg": "ok"}]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"errcode": 0, "access_token": TOKEN, "expires_in": 7200})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


def channel(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> WeComChannel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return WeComChannel(client, CORP_ID, SECRET, AGENT_ID, **kwargs)


# --- the retry table: vendor code -> outcome and reason ----------------------------------------

RETRY_TABLE: list[tuple[int, Outcome, Reason]] = [
    (-1, Outcome.retry, Reason.server),
    (45009, Outcome.retry, Reason.rate_limited),
    (45033, Outcome.retry, Reason.rate_limited),
    (40014, Outcome.retry, Reason.auth),  # after the one refresh within the call
    (42001, Outcome.retry, Reason.auth),
    (40082, Outcome.retry, Reason.auth),
    (40001, Outcome.permanent, Reason.auth),
    (40013, Outcome.permanent, Reason.auth),
    (40056, Outcome.permanent, Reason.auth),
    (60020, Outcome.permanent, Reason.auth),
    (81013, Outcome.permanent, Reason.recipient),
    (40003, Outcome.permanent, Reason.recipient),
    (46004, Outcome.permanent, Reason.recipient),
    (41033, Outcome.permanent, Reason.client),
    (99999, Outcome.permanent, Reason.client),  # unknown: permanent
]


def assert_outcome(result: Result, outcome: Outcome, reason: Reason, code: str | None = None) -> None:
    assert (result.outcome, result.reason) == (outcome, reason), result
    if code is not None:
        assert result.vendor_code == code


@pytest.mark.parametrize(("errcode", "outcome", "reason"), RETRY_TABLE)
def test_errcode_table(errcode: int, outcome: Outcome, reason: Reason) -> None:
    vendor = Vendor({"errcode": errcode, "errmsg": "whatever the vendor says"})
    result = channel(vendor).send(message(), {"userid": "WangLi"})
    assert_outcome(result, outcome, reason, str(errcode))
    # Only the token errors are worth a second try within the call, with a fresh token.
    sends = 2 if errcode in TOKEN_ERRORS else 1
    assert len(vendor.calls("/cgi-bin/message/send")) == sends
    assert len(vendor.calls("/cgi-bin/gettoken")) == sends


def test_the_table_covers_every_code_the_brief_names() -> None:
    for code in (40014, 42001, 40082, 45009, 45033, 81013, -1):
        assert code in ERRORS


@pytest.mark.parametrize(
    ("response", "outcome", "reason"),
    [
        (httpx.Response(502, html="<html>502 Bad Gateway</html>"), Outcome.retry, Reason.server),
        (httpx.Response(429, headers={"Retry-After": "7"}), Outcome.retry, Reason.rate_limited),
        (httpx.Response(403), Outcome.permanent, Reason.auth),
        (httpx.Response(200, text="<html>oops</html>"), Outcome.retry, Reason.server),
        (httpx.Response(200, json=["not", "an", "object"]), Outcome.retry, Reason.server),
        (httpx.Response(200, json={"errcode": "not a number"}), Outcome.retry, Reason.server),
    ],
)
def test_http_level_answers(response: httpx.Response, outcome: Outcome, reason: Reason) -> None:
    assert_outcome(channel(Vendor(response)).send(message(), {"userid": "WangLi"}), outcome, reason)


def test_wire_format() -> None:
    vendor = Vendor()
    result = channel(vendor).send(message(body="体温 <38.5℃> & 咳嗽"), {"userid": "WangLi"})
    assert result.delivered
    gettoken, send = vendor.requests
    assert gettoken.method == "GET"
    assert dict(gettoken.url.params) == {"corpid": CORP_ID, "corpsecret": SECRET}
    assert send.method == "POST" and send.url.params["access_token"] == TOKEN
    assert b"\\u" not in send.content  # WeCom refuses \uXXXX escapes (40033)
    document = json.loads(send.content)
    assert document == {
        "touser": "WangLi",
        "agentid": AGENT_ID,
        "msgtype": "textcard",
        "textcard": {
            "title": "三年级2班 张同学 身体不适（紧急）",
            "description": '<div class="gray">2026-11-25 10:00</div>'
            '<div class="highlight">体温 &lt;38.5℃&gt; &amp; 咳嗽</div>',
            "url": "https://relay.example.cn/a/xyz",
            "btntxt": "确认",
        },
    }


def test_textcard_fits_wecom_limits() -> None:
    card = textcard(message(title="紧" * 100, body="&" * 400, urgency="P2"), "https://x.example")
    assert len(card["title"].encode()) <= 128 and card["title"].endswith("…")
    assert len(card["description"].encode()) <= 512
    assert card["description"].endswith("…</div>") and "&amp…" not in card["description"]
    assert '<div class="normal">' in card["description"]


def test_link_falls_back_to_public_url_then_to_text() -> None:
    vendor = Vendor()
    channel(vendor, fallback_url="https://relay.example.cn/").send(message(link=None), {"userid": "WangLi"})
    assert json.loads(vendor.requests[-1].content)["textcard"]["url"] == "https://relay.example.cn/"
    vendor = Vendor()
    assert channel(vendor).send(message(link=None), {"userid": "WangLi"}).delivered
    document = json.loads(vendor.requests[-1].content)
    assert document["msgtype"] == "text"
    assert document["text"]["content"] == "三年级2班 张同学 身体不适（紧急）\n请尽快确认并处理"


@pytest.mark.parametrize(
    ("answer", "delivered"),
    [
        ({"errcode": 0, "invaliduser": "wangli"}, False),  # WeCom lowercases what it lists
        ({"errcode": 0, "invaliduser": "someone|WangLi"}, False),
        ({"errcode": 0, "unlicenseduser": "wangli"}, False),
        ({"errcode": 0, "invaliduser": "someoneelse", "unlicenseduser": ""}, True),
        ({"errcode": 0, "invaliduser": ""}, True),
    ],
)
def test_invaliduser_in_a_successful_answer(answer: dict[str, Any], delivered: bool) -> None:
    result = channel(Vendor(answer)).send(message(), {"userid": "WangLi"})
    if delivered:
        assert result.delivered
    else:
        assert_outcome(result, Outcome.permanent, Reason.recipient, "invaliduser")


@pytest.mark.parametrize(
    ("corp_id", "secret", "agent_id"),
    [("", SECRET, AGENT_ID), (CORP_ID, None, AGENT_ID), (CORP_ID, SECRET, None), (CORP_ID, SECRET, "abc")],
)
def test_missing_configuration_sends_nothing(corp_id: str, secret: str | None, agent_id: Any) -> None:
    vendor = Vendor()
    client = httpx.Client(transport=httpx.MockTransport(vendor))
    result = WeComChannel(client, corp_id, secret, agent_id).send(message(), {"userid": "WangLi"})
    assert_outcome(result, Outcome.permanent, Reason.not_configured)
    assert vendor.requests == []


def test_contact_without_userid_is_a_recipient_failure() -> None:
    assert_outcome(channel(Vendor()).send(message(), {}), Outcome.permanent, Reason.recipient)


def test_agent_id_from_the_environment_is_a_string() -> None:
    vendor = Vendor()
    client = httpx.Client(transport=httpx.MockTransport(vendor))
    assert WeComChannel(client, CORP_ID, SECRET, "1000002").send(message(), {"userid": "WangLi"}).delivered
    assert json.loads(vendor.requests[-1].content)["agentid"] == 1000002


def test_gettoken_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})

    assert_outcome(
        channel(handler).send(message(), {"userid": "WangLi"}), Outcome.permanent, Reason.auth, "40001"
    )


# --- against the local WeCom, over a real socket -----------------------------------------------


@pytest.fixture
def wecom() -> Iterator[WeComServer]:
    with WeComServer(CORP_ID, SECRET, AGENT_ID) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


def live(wecom: WeComServer, client: httpx.Client, **kwargs: Any) -> WeComChannel:
    return WeComChannel(client, CORP_ID, SECRET, AGENT_ID, base_url=wecom.base_url, **kwargs)


def test_send_ok(wecom: WeComServer, client: httpx.Client) -> None:
    result = live(wecom, client).send(message(), {"userid": "WangLi"})
    assert result.delivered
    (sent,) = wecom.messages
    assert sent["touser"] == "WangLi" and sent["msgtype"] == "textcard"
    assert sent["textcard"]["title"] == "三年级2班 张同学 身体不适（紧急）"


def test_token_is_cached(wecom: WeComServer, client: httpx.Client) -> None:
    channel = live(wecom, client)
    for n in range(5):
        assert channel.send(message(event_id=f"ev-{n}"), {"userid": "WangLi"}).delivered
    assert wecom.token_requests == 1 and len(wecom.messages) == 5


def test_token_expired_mid_run_is_refreshed_within_the_call(wecom: WeComServer, client: httpx.Client) -> None:
    channel = live(wecom, client)
    assert channel.send(message(), {"userid": "WangLi"}).delivered
    wecom.expire_token()
    assert channel.send(message(event_id="ev-2"), {"userid": "WangLi"}).delivered
    assert wecom.answers == [0, 42001, 0]
    assert wecom.token_requests == 2 and len(wecom.issued_tokens) == 2
    assert channel.send(message(event_id="ev-3"), {"userid": "WangLi"}).delivered
    assert wecom.token_requests == 2


def test_token_refreshed_ahead_of_expiry(wecom: WeComServer, client: httpx.Client) -> None:
    now = [1000.0]
    channel = live(wecom, client, clock=lambda: now[0])
    assert channel.send(message(), {"userid": "WangLi"}).delivered
    now[0] += 7200 - 301  # still more than five minutes left: keep it
    assert channel.send(message(), {"userid": "WangLi"}).delivered
    assert wecom.token_requests == 1
    now[0] += 2  # under five minutes left: ask again before sending
    assert channel.send(message(), {"userid": "WangLi"}).delivered
    assert wecom.token_requests == 2
    assert 42001 not in wecom.answers and 40014 not in wecom.answers


def test_rate_limit_is_retried_later(wecom: WeComServer, client: httpx.Client) -> None:
    wecom.rate_limit_after = 2
    channel = live(wecom, client)
    results = [channel.send(message(), {"userid": "WangLi"}) for _ in range(3)]
    assert [r.delivered for r in results] == [True, True, False]
    assert_outcome(results[-1], Outcome.retry, Reason.rate_limited, "45009")
    assert results[-1].retry_after is not None


def test_unknown_user_is_permanent(wecom: WeComServer, client: httpx.Client) -> None:
    wecom.unknown_users = {"Nobody"}
    result = live(wecom, client).send(message(), {"userid": "Nobody"})
    assert_outcome(result, Outcome.permanent, Reason.recipient, "81013")
    assert wecom.messages == []


def test_unlicensed_user_is_permanent(wecom: WeComServer, client: httpx.Client) -> None:
    wecom.unlicensed_users = {"WangLi"}
    result = live(wecom, client).send(message(), {"userid": "WangLi"})
    assert_outcome(result, Outcome.permanent, Reason.recipient, "invaliduser")


@pytest.mark.parametrize("fault", ["not_json", "html_502", "empty"])
def test_malformed_answer_is_retried(wecom: WeComServer, client: httpx.Client, fault: str) -> None:
    channel = live(wecom, client)
    assert channel.send(message(), {"userid": "WangLi"}).delivered  # token cached
    wecom.fail_next(fault)
    assert_outcome(channel.send(message(), {"userid": "WangLi"}), Outcome.retry, Reason.server)
    assert channel.send(message(), {"userid": "WangLi"}).delivered


def test_malformed_token_answer_is_retried(wecom: WeComServer, client: httpx.Client) -> None:
    wecom.fail_next("html_502")
    assert_outcome(live(wecom, client).send(message(), {"userid": "WangLi"}), Outcome.retry, Reason.server)


def test_slow_answer_is_a_timeout(wecom: WeComServer) -> None:
    wecom.delay = 1.0
    with httpx.Client(timeout=0.2) as client:
        result = live(wecom, client).send(message(), {"userid": "WangLi"})
    assert_outcome(result, Outcome.retry, Reason.timeout)


def test_unreachable_wecom_is_retried(client: httpx.Client) -> None:
    with WeComServer() as gone:
        base_url = gone.base_url
    result = WeComChannel(client, CORP_ID, SECRET, AGENT_ID, base_url=base_url).send(
        message(), {"userid": "W"}
    )
    assert_outcome(result, Outcome.retry, Reason.server)


def test_wrong_secret_is_permanent(wecom: WeComServer, client: httpx.Client) -> None:
    channel = WeComChannel(client, CORP_ID, "not-the-secret", AGENT_ID, base_url=wecom.base_url)
    assert_outcome(channel.send(message(), {"userid": "WangLi"}), Outcome.permanent, Reason.auth, "40001")


def test_no_secret_or_token_in_any_result(wecom: WeComServer) -> None:
    results: list[Result] = []
    with httpx.Client(timeout=0.2) as client:
        channel = live(wecom, client)
        results.append(channel.send(message(), {"userid": "WangLi"}))
        wecom.expire_token()
        results.append(channel.send(message(), {"userid": "WangLi"}))
        for fault in ("not_json", "html_502", "empty"):
            wecom.fail_next(fault)
            results.append(channel.send(message(), {"userid": "WangLi"}))
        wecom.unknown_users = {"Nobody"}
        results.append(channel.send(message(), {"userid": "Nobody"}))
        wecom.rate_limit_after = 0
        results.append(channel.send(message(), {"userid": "WangLi"}))
        wecom.delay = 1.0
        wecom.expire_token()
        results.append(channel.send(message(), {"userid": "WangLi"}))  # gettoken times out
        wecom.delay = 0.0
        bad = WeComChannel(client, CORP_ID, "wrong-" + SECRET, AGENT_ID, base_url=wecom.base_url)
        results.append(bad.send(message(), {"userid": "WangLi"}))
        results.append(
            WeComChannel(client, CORP_ID, SECRET, AGENT_ID, base_url="http://127.0.0.1:9").send(
                message(), {"userid": "WangLi"}
            )
        )
    secrets = [SECRET, *wecom.issued_tokens, "access_token=", "corpsecret"]
    assert len(wecom.issued_tokens) >= 2
    texts = [f"{result!r} {result.detail}" for result in results] + [repr(channel), repr(bad)]
    for text in texts:
        for secret in secrets:
            assert secret not in text
