"""MiniProgramChannel and MiniProgramLogin: the errcode tables and template data over
httpx.MockTransport, and the whole exchange against a local WeChat
(tests/vendors/wechat_server.py) over a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.base import Message, Outcome, Reason, Result
from adapters.miniprogram import (
    TOKEN_ERRORS,
    LoginError,
    MiniProgramChannel,
    MiniProgramLogin,
    Session,
    fit,
    template_data,
)
from tests.vendors.wechat_server import WeChatServer

APP_ID, APP_SECRET, TEMPLATE_ID = "wx-test-app", "wechat-secret-7d1e", "tpl-request-status"
TOKEN = "mock-token-c41a9e"
OPENID = "o-parent-zhang"


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        event="request.assigned",
        event_id="ev-1",
        attempt=1,
        sent_at="2026-11-25T10:00:00+08:00",
        urgency="P0",
        title="三年级2班 张同学 身体不适（紧急）",
        body="王老师已接手，今天16:00前回复",
        link="https://relay.example.cn/a/xyz",
        recipient={"id": "g-1001a", "name": "张妈妈", "role": "guardian"},
        request={"id": "req-42"},
    )
    return Message(**(fields | changes))


class Vendor:
    """A scripted WeChat for MockTransport: a stable token, then `answers` for subscribe/send in turn."""

    def __init__(self, *answers: dict[str, Any] | httpx.Response) -> None:
        self.answers = list(answers) or [{"errcode": 0, "errmsg": "ok"}]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 7200})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


def channel(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> MiniProgramChannel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return MiniProgramChannel(client, APP_ID, APP_SECRET, TEMPLATE_ID, **kwargs)


def assert_outcome(result: Result, outcome: Outcome, reason: Reason, code: str | None = None) -> None:
    assert (result.outcome, result.reason) == (outcome, reason), result
    if code is not None:
        assert result.vendor_code == code


# --- the retry table: vendor code -> outcome and reason ----------------------------------------

RETRY_TABLE: list[tuple[int, Outcome, Reason]] = [
    (-1, Outcome.retry, Reason.server),
    (45009, Outcome.retry, Reason.rate_limited),
    (45011, Outcome.retry, Reason.rate_limited),
    (43108, Outcome.retry, Reason.rate_limited),
    (40001, Outcome.retry, Reason.auth),  # after the one refresh within the call
    (40014, Outcome.retry, Reason.auth),
    (42001, Outcome.retry, Reason.auth),
    (48001, Outcome.permanent, Reason.auth),
    (40013, Outcome.permanent, Reason.auth),
    (43101, Outcome.permanent, Reason.recipient),
    (40003, Outcome.permanent, Reason.recipient),
    (47003, Outcome.permanent, Reason.client),
    (40037, Outcome.permanent, Reason.client),
    (41030, Outcome.permanent, Reason.client),
    (99999, Outcome.permanent, Reason.client),  # unknown: permanent
]


@pytest.mark.parametrize(("errcode", "outcome", "reason"), RETRY_TABLE)
def test_errcode_table(errcode: int, outcome: Outcome, reason: Reason) -> None:
    vendor = Vendor({"errcode": errcode, "errmsg": "whatever the vendor says"})
    result = channel(vendor).send(message(), {"openid": OPENID})
    assert_outcome(result, outcome, reason, str(errcode))
    sends = 2 if errcode in TOKEN_ERRORS else 1
    assert len(vendor.calls("/cgi-bin/message/subscribe/send")) == sends
    assert len(vendor.calls("/cgi-bin/stable_token")) == sends


@pytest.mark.parametrize(
    ("response", "outcome", "reason"),
    [
        (httpx.Response(502, html="<html>502 Bad Gateway</html>"), Outcome.retry, Reason.server),
        (httpx.Response(429), Outcome.retry, Reason.rate_limited),
        (httpx.Response(200, text="<html>oops</html>"), Outcome.retry, Reason.server),
        (httpx.Response(200, json=None), Outcome.retry, Reason.server),
    ],
)
def test_http_level_answers(response: httpx.Response, outcome: Outcome, reason: Reason) -> None:
    assert_outcome(channel(Vendor(response)).send(message(), {"openid": OPENID}), outcome, reason)


def test_wire_format() -> None:
    vendor = Vendor()
    assert channel(vendor).send(message(), {"openid": OPENID}).delivered
    token_request, send = vendor.requests
    assert token_request.method == "POST" and "secret" not in str(token_request.url)
    assert json.loads(token_request.content) == {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": APP_SECRET,
    }
    assert send.method == "POST" and send.url.params["access_token"] == TOKEN
    assert json.loads(send.content) == {
        "touser": OPENID,
        "template_id": TEMPLATE_ID,
        "page": "pages/request/detail?id=req-42",
        "data": {
            "thing1": {"value": "三年级2班 张同学 身体不适（紧急）"},
            "phrase2": {"value": "已分配"},
            "thing3": {"value": "王老师已接手，今天16:00前回复"},
            "time4": {"value": "2026年11月25日 10:00"},
        },
        "lang": "zh_CN",
    }


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ("request.created", "已受理"),
        ("request.assigned", "已分配"),
        ("request.replied", "已回复"),
        ("request.resolved", "已办结"),
        ("request.something_new", "处理中"),
    ],
)
def test_status_words(event: str, words: str) -> None:
    assert template_data(message(event=event))["phrase2"] == {"value": words}


@pytest.mark.parametrize(
    ("key", "value", "fitted"),
    [
        ("thing1", "一二三四五六七八九十一二三四五六七八九十", "一二三四五六七八九十一二三四五六七八九十"),
        ("thing1", "一二三四五六七八九十一二三四五六七八九十多", "一二三四五六七八九十一二三四五六七八九…"),
        ("thing3", "第一行\n第二行\t", "第一行 第二行"),
        ("thing3", "", "—"),
        ("phrase2", "已回复 (ok)", "已回复"),
        ("phrase2", "已经分配给老师", "已经分配给"),
        ("phrase2", "OK", "有更新"),
        ("time4", "2026-11-25T16:05:00+08:00", "2026年11月25日 16:05"),
        ("character_string5", "x" * 40, "x" * 31 + "…"),
    ],
)
def test_values_fit_the_template_rules(key: str, value: str, fitted: str) -> None:
    assert fit(key, value) == fitted


def test_fields_follow_the_chosen_template() -> None:
    fields = {"title": "thing5", "status": "phrase1", "time": "time3"}
    vendor = Vendor()
    assert channel(vendor, fields=fields).send(message(), {"openid": OPENID}).delivered
    assert set(json.loads(vendor.requests[-1].content)["data"]) == {"thing5", "phrase1", "time3"}


def test_page_without_a_request_id() -> None:
    vendor = Vendor()
    channel(vendor, page="pages/index/index").send(message(request={}), {"openid": OPENID})
    assert json.loads(vendor.requests[-1].content)["page"] == "pages/index/index"


@pytest.mark.parametrize(
    ("app_id", "secret", "template_id"),
    [("", APP_SECRET, TEMPLATE_ID), (APP_ID, None, TEMPLATE_ID), (APP_ID, APP_SECRET, "")],
)
def test_missing_configuration_sends_nothing(app_id: str, secret: str | None, template_id: str) -> None:
    vendor = Vendor()
    client = httpx.Client(transport=httpx.MockTransport(vendor))
    result = MiniProgramChannel(client, app_id, secret, template_id).send(message(), {"openid": OPENID})
    assert_outcome(result, Outcome.permanent, Reason.not_configured)
    assert vendor.requests == []


def test_guardian_without_openid_is_a_recipient_failure() -> None:
    assert_outcome(channel(Vendor()).send(message(), {}), Outcome.permanent, Reason.recipient)


# --- login: jscode2session ---------------------------------------------------------------------

LOGIN_TABLE: list[tuple[int, Reason, bool]] = [
    (40029, Reason.client, False),
    (40163, Reason.client, False),
    (40226, Reason.recipient, False),
    (45011, Reason.rate_limited, True),
    (-1, Reason.server, True),
    (40125, Reason.auth, False),
    (99999, Reason.client, False),
]


def login(handler: Callable[[httpx.Request], httpx.Response]) -> MiniProgramLogin:
    return MiniProgramLogin(httpx.Client(transport=httpx.MockTransport(handler)), APP_ID, APP_SECRET)


@pytest.mark.parametrize(("errcode", "reason", "retryable"), LOGIN_TABLE)
def test_login_errcode_table(errcode: int, reason: Reason, retryable: bool) -> None:
    answer = httpx.Response(200, text=json.dumps({"errcode": errcode, "errmsg": "x"}))
    with pytest.raises(LoginError) as raised:
        login(lambda request: answer).code_to_session("code-1")
    assert (raised.value.code, raised.value.reason, raised.value.retryable) == (
        str(errcode),
        reason,
        retryable,
    )


def test_login_wire_format() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"openid": OPENID, "session_key": "sk-abc", "unionid": "u-1"}
        return httpx.Response(200, text=json.dumps(body), headers={"Content-Type": "text/plain"})

    session = login(handler).code_to_session("code-1")
    assert session == Session(OPENID, "u-1")
    assert session.session_key == "sk-abc"
    assert seen[0].method == "GET" and seen[0].url.path == "/sns/jscode2session"
    assert dict(seen[0].url.params) == {
        "appid": APP_ID,
        "secret": APP_SECRET,
        "js_code": "code-1",
        "grant_type": "authorization_code",
    }


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(200, text="<html>oops</html>"), Reason.server),
        (httpx.Response(502), Reason.server),
        (httpx.Response(200, json={"errcode": 0}), Reason.server),  # no openid
    ],
)
def test_login_malformed_answers(response: httpx.Response, reason: Reason) -> None:
    with pytest.raises(LoginError) as raised:
        login(lambda request: response).code_to_session("code-1")
    assert raised.value.reason is reason and raised.value.retryable


def test_login_needs_configuration_and_a_code() -> None:
    client = httpx.Client(transport=httpx.MockTransport(Vendor()))
    with pytest.raises(LoginError) as raised:
        MiniProgramLogin(client, APP_ID, "").code_to_session("code-1")
    assert raised.value.reason is Reason.not_configured
    with pytest.raises(LoginError) as raised:
        MiniProgramLogin(client, APP_ID, APP_SECRET).code_to_session("")
    assert raised.value.reason is Reason.client


def test_session_key_is_never_in_a_repr() -> None:
    session = Session(OPENID, None, "sk-very-secret")
    assert "sk-very-secret" not in repr(session) and "sk-very-secret" not in str(session)
    assert session == Session(OPENID, None, "another")


# --- against the local WeChat, over a real socket ----------------------------------------------


@pytest.fixture
def wechat() -> Iterator[WeChatServer]:
    with WeChatServer(APP_ID, APP_SECRET, TEMPLATE_ID) as server:
        server.subscribe(OPENID, times=100)
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


def live(wechat: WeChatServer, client: httpx.Client, **kwargs: Any) -> MiniProgramChannel:
    return MiniProgramChannel(client, APP_ID, APP_SECRET, TEMPLATE_ID, base_url=wechat.base_url, **kwargs)


def test_send_ok(wechat: WeChatServer, client: httpx.Client) -> None:
    assert live(wechat, client).send(message(), {"openid": OPENID}).delivered
    (sent,) = wechat.messages
    assert sent["touser"] == OPENID and sent["data"]["phrase2"] == {"value": "已分配"}


def test_long_title_is_cut_so_wechat_accepts_it(wechat: WeChatServer, client: httpx.Client) -> None:
    title = "三年级2班 张同学 身体不适，需要家长尽快到校接回（紧急）"
    assert live(wechat, client).send(message(title=title), {"openid": OPENID}).delivered
    assert len(wechat.messages[0]["data"]["thing1"]["value"]) == 20


def test_token_is_cached(wechat: WeChatServer, client: httpx.Client) -> None:
    channel = live(wechat, client)
    for n in range(5):
        assert channel.send(message(event_id=f"ev-{n}"), {"openid": OPENID}).delivered
    assert wechat.token_requests == 1 and len(wechat.messages) == 5


def test_token_expired_mid_run_is_refreshed_within_the_call(
    wechat: WeChatServer, client: httpx.Client
) -> None:
    channel = live(wechat, client)
    assert channel.send(message(), {"openid": OPENID}).delivered
    wechat.expire_token()
    assert channel.send(message(), {"openid": OPENID}).delivered
    assert wechat.answers == [0, 42001, 0] and wechat.token_requests == 2


def test_token_refreshed_ahead_of_expiry(wechat: WeChatServer, client: httpx.Client) -> None:
    now = [50.0]
    channel = live(wechat, client, clock=lambda: now[0])
    assert channel.send(message(), {"openid": OPENID}).delivered
    now[0] += 7200 - 301
    assert channel.send(message(), {"openid": OPENID}).delivered
    assert wechat.token_requests == 1
    now[0] += 2
    assert channel.send(message(), {"openid": OPENID}).delivered
    assert wechat.token_requests == 2 and 42001 not in wechat.answers


def test_not_subscribed_is_permanent_and_never_retried(wechat: WeChatServer, client: httpx.Client) -> None:
    wechat.subscribe("o-once", times=1)
    wechat.subscribe("o-never", times=0)
    channel = live(wechat, client)
    assert channel.send(message(), {"openid": "o-once"}).delivered
    for openid in ("o-once", "o-never"):  # one-time subscription used up / never given
        assert_outcome(
            channel.send(message(), {"openid": openid}), Outcome.permanent, Reason.recipient, "43101"
        )
    assert wechat.answers == [0, 43101, 43101] and wechat.token_requests == 1


def test_invalid_openid_is_permanent(wechat: WeChatServer, client: httpx.Client) -> None:
    result = live(wechat, client).send(message(), {"openid": "o-from-another-app"})
    assert_outcome(result, Outcome.permanent, Reason.recipient, "40003")


def test_rate_limit_is_retried_later(wechat: WeChatServer, client: httpx.Client) -> None:
    wechat.rate_limit_after = 1
    channel = live(wechat, client)
    assert channel.send(message(), {"openid": OPENID}).delivered
    assert_outcome(channel.send(message(), {"openid": OPENID}), Outcome.retry, Reason.rate_limited, "45009")


def test_page_outside_the_mini_program_is_permanent(wechat: WeChatServer, client: httpx.Client) -> None:
    result = live(wechat, client, page="pages/nowhere").send(message(), {"openid": OPENID})
    assert_outcome(result, Outcome.permanent, Reason.client, "41030")


@pytest.mark.parametrize("fault", ["not_json", "html_502", "empty"])
def test_malformed_answer_is_retried(wechat: WeChatServer, client: httpx.Client, fault: str) -> None:
    channel = live(wechat, client)
    assert channel.send(message(), {"openid": OPENID}).delivered
    wechat.fail_next(fault)
    assert_outcome(channel.send(message(), {"openid": OPENID}), Outcome.retry, Reason.server)


def test_slow_answer_is_a_timeout(wechat: WeChatServer) -> None:
    wechat.delay = 1.0
    with httpx.Client(timeout=0.2) as client:
        assert_outcome(
            live(wechat, client).send(message(), {"openid": OPENID}), Outcome.retry, Reason.timeout
        )


def test_wrong_secret_is_permanent(wechat: WeChatServer, client: httpx.Client) -> None:
    channel = MiniProgramChannel(client, APP_ID, "nope", TEMPLATE_ID, base_url=wechat.base_url)
    assert_outcome(channel.send(message(), {"openid": OPENID}), Outcome.permanent, Reason.auth, "40125")


def test_login_ok_and_code_used_once(wechat: WeChatServer, client: httpx.Client) -> None:
    wechat.add_login_code("code-ok", OPENID, unionid="u-zhang")
    wechat.add_login_code("code-no-union", "o-other")
    login = MiniProgramLogin(client, APP_ID, APP_SECRET, wechat.base_url)
    assert login.code_to_session("code-ok") == Session(OPENID, "u-zhang")
    assert login.code_to_session("code-no-union") == Session("o-other", None)
    with pytest.raises(LoginError) as raised:
        login.code_to_session("code-ok")
    assert (raised.value.code, raised.value.reason) == ("40163", Reason.client)


@pytest.mark.parametrize(
    ("setup", "code", "errcode", "reason"),
    [
        (lambda s: None, "code-unknown", "40029", Reason.client),
        (lambda s: s.high_risk_codes.add("code-risky"), "code-risky", "40226", Reason.recipient),
        (lambda s: setattr(s, "login_rate_limited", True), "code-x", "45011", Reason.rate_limited),
    ],
)
def test_login_refused(
    wechat: WeChatServer,
    client: httpx.Client,
    setup: Callable[[WeChatServer], object],
    code: str,
    errcode: str,
    reason: Reason,
) -> None:
    setup(wechat)
    with pytest.raises(LoginError) as raised:
        MiniProgramLogin(client, APP_ID, APP_SECRET, wechat.base_url).code_to_session(code)
    assert (raised.value.code, raised.value.reason) == (errcode, reason)


def test_login_timeout(wechat: WeChatServer) -> None:
    wechat.delay = 1.0
    with httpx.Client(timeout=0.2) as client, pytest.raises(LoginError) as raised:
        MiniProgramLogin(client, APP_ID, APP_SECRET, wechat.base_url).code_to_session("code-1")
    assert raised.value.reason is Reason.timeout and raised.value.retryable
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_no_secret_token_code_or_session_key_anywhere(wechat: WeChatServer) -> None:
    texts: list[str] = []
    with httpx.Client(timeout=0.2) as client:
        channel = live(wechat, client)
        login = MiniProgramLogin(client, APP_ID, APP_SECRET, wechat.base_url)
        results = [channel.send(message(), {"openid": OPENID})]
        wechat.expire_token()
        results.append(channel.send(message(), {"openid": OPENID}))
        for fault in ("not_json", "html_502", "empty"):
            wechat.fail_next(fault)
            results.append(channel.send(message(), {"openid": OPENID}))
        results.append(channel.send(message(), {"openid": "o-unknown"}))
        wechat.add_login_code("code-secret-1", OPENID, "u-1")
        session = login.code_to_session("code-secret-1")
        texts += [repr(session), str(session), repr(login), repr(channel)]
        wechat.delay = 1.0
        wechat.expire_token()
        results.append(channel.send(message(), {"openid": OPENID}))  # token request times out
        for code in ("code-secret-1", "code-secret-2"):
            try:
                login.code_to_session(code)
            except LoginError as exc:
                texts += [str(exc), repr(exc), repr(exc.args)]
        wechat.delay = 0.0
        for code in ("code-secret-1", "code-secret-2"):  # used, unknown
            try:
                login.code_to_session(code)
            except LoginError as exc:
                texts += [str(exc), repr(exc), repr(exc.args)]
    texts += [f"{result!r} {result.detail}" for result in results]
    assert len(texts) > 15 and len(wechat.issued_tokens) >= 2 and wechat.issued_session_keys
    forbidden = [
        APP_SECRET,
        *wechat.issued_tokens,
        *wechat.issued_session_keys,
        "code-secret",
        "access_token=",
    ]
    for text in texts:
        for secret in forbidden:
            assert secret not in text
