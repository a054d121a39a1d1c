"""The DingTalk custom robot channel (钉钉自定义机器人).

POST the robot's webhook url (the contact's `url`, which carries its access_token) with a
JSON `actionCard` (a button to `message.link`) or, without a link, a `markdown` message.
A robot with 加签 enabled needs `&timestamp=<ms>&sign=<urlencode(base64(HMAC-SHA256(secret,
f"{timestamp}\\n{secret}")))>` appended; the secret comes from the variable the contact names in
`secret_env` (default RELAY_DINGTALK_SECRET), looked up in the `secrets` the channel was given.

DingTalk answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}` or an error code, mapped below.
The robot url, its access token, the secret and the signed link are secrets: none of them
ever appears in a Result.

Docs: https://open.dingtalk.com/document/orgapp/custom-robot-access
      https://open.dingtalk.com/document/orgapp/robot-message-types-and-data-format
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping

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

DEFAULT_SECRET_ENV = "RELAY_DINGTALK_SECRET"
# A contact may only name variables under this prefix, so that whoever edits the school YAML
# cannot make Relay sign with (and send a digest of) an unrelated secret such as RELAY_SECRET_KEY.
SECRET_ENV_PREFIX = "RELAY_DINGTALK_"

# errcode -> (outcome, reason, detail, retry_after seconds). Unknown codes are permanent.
# https://open.dingtalk.com/document/orgapp/custom-robot-access (调用频率限制, 错误码)
ERROR_CODES: dict[int, tuple[Outcome, Reason, str, float | None]] = {
    -1: (Outcome.retry, Reason.server, "dingtalk busy", None),  # 系统繁忙
    # 每个机器人每分钟最多 20 条; past that the robot is throttled for 10 minutes.
    130101: (Outcome.retry, Reason.rate_limited, "robot sends too fast (20/min)", 600.0),
    410100: (Outcome.retry, Reason.rate_limited, "robot sends too fast", 600.0),
    # 消息校验未通过: sign mismatch, timestamp more than an hour off, keyword missing, or IP not allowed.
    310000: (Outcome.permanent, Reason.auth, "robot security check failed (sign, keyword or ip)", None),
    300001: (Outcome.permanent, Reason.auth, "robot access token does not exist", None),
    300005: (Outcome.permanent, Reason.auth, "robot access token does not exist", None),
    400101: (Outcome.permanent, Reason.auth, "robot access token does not exist", None),
    400013: (Outcome.permanent, Reason.recipient, "the robot's group was disbanded", None),  # 群已被解散
    400102: (Outcome.permanent, Reason.recipient, "robot is stopped", None),  # 机器人已停用
    400106: (Outcome.permanent, Reason.recipient, "robot does not exist", None),
    400105: (Outcome.permanent, Reason.client, "message type not supported", None),
    40035: (Outcome.permanent, Reason.client, "message is missing a parameter", None),
    43004: (Outcome.permanent, Reason.client, "content type refused", None),
    430101: (Outcome.permanent, Reason.client, "message contains an unsafe link", None),
    430102: (Outcome.permanent, Reason.client, "message text refused", None),
    430104: (Outcome.permanent, Reason.client, "message content refused", None),
}

Secrets = Mapping[str, str] | Callable[[str], str | None]


def sign(secret: str, timestamp_ms: int) -> str:
    """The robot signature, already url-encoded as DingTalk expects it in the query."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


def document(message: Message) -> dict[str, object]:
    text = f"### {message.title}\n\n{message.body}"
    if message.link:
        card = {"title": message.title, "text": text, "singleTitle": "查看并确认", "singleURL": message.link}
        return {"msgtype": "actionCard", "actionCard": card}
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}


def result_from_answer(response: httpx.Response) -> Result:
    try:
        answer = response.json()
        errcode = int(answer["errcode"])
    except (ValueError, KeyError, TypeError):
        # Not DingTalk's JSON: a gateway page or a cut-off body. Trust the status, else retry.
        failed = result_from_status(response)
        return failed or Result(Outcome.retry, Reason.server, None, "malformed answer")
    if errcode == 0:
        return delivered("0")
    known = ERROR_CODES.get(errcode)
    if known is None:
        return Result(Outcome.permanent, Reason.client, str(errcode), "unknown dingtalk error code")
    outcome, reason, detail, retry_after = known
    return Result(outcome, reason, str(errcode), detail, retry_after)


class DingTalkChannel:
    name = "dingtalk"

    def __init__(
        self,
        client: httpx.Client,
        secrets: Secrets,
        default_secret_env: str = DEFAULT_SECRET_ENV,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._secrets = secrets
        self._default_secret_env = default_secret_env
        self._clock = clock
        self._timeout = timeout

    def _secret(self, env_name: str) -> str | None:
        if callable(self._secrets):
            return self._secrets(env_name) or None
        return self._secrets.get(env_name) or None

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        url = address.get("url")
        if not url:
            return not_configured("dingtalk contact url")
        env_name = address.get("secret_env") or self._default_secret_env
        if not env_name.startswith(SECRET_ENV_PREFIX):
            return not_configured(f"dingtalk secret_env (must start with {SECRET_ENV_PREFIX})")
        secret = self._secret(env_name)
        if secret is None:
            return not_configured(f"dingtalk secret {env_name}")

        body = json.dumps(document(message), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp_ms = int(self._clock() * 1000)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Relay-DingTalk/1"}
        try:
            response = self._client.post(
                signed_url(url, secret, timestamp_ms), content=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            return result_from_exception(exc)
        return result_from_answer(response)
