"""What WeCom and WeChat share: Tencent's `errcode` answers and the access token's lifecycle.

Both answer HTTP 200 with `{"errcode": N, ...}`, and both hand out an access token that
expires (`expires_in`) and can be revoked early (a token errcode): it is cached in the
channel, refreshed ahead of expiry, and dropped when the vendor says it is no longer good.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx

from adapters.base import Outcome, Reason, Result, result_from_exception, result_from_status

REFRESH_AHEAD = 300.0  # seconds before expires_in


class Rule(NamedTuple):
    outcome: Outcome
    reason: Reason
    detail: str
    retry_after: float | None = None


def result_for(errors: Mapping[int, Rule], errcode: int) -> Result:
    """The Result an errcode means by the vendor's table; codes not listed are permanent client errors."""
    rule = errors.get(errcode) or Rule(Outcome.permanent, Reason.client, f"errcode {errcode}")
    return Result(rule.outcome, rule.reason, str(errcode), rule.detail, rule.retry_after)


def read_answer(response: httpx.Response) -> dict[str, Any] | Result:
    """The JSON object the vendor answered (errcode made an int), or the Result that says why there is none."""
    failed = result_from_status(response)
    if failed is not None:
        return failed
    try:
        answer = response.json()  # jscode2session answers JSON as text/plain
        if isinstance(answer, dict):
            answer["errcode"] = int(answer.get("errcode") or 0)
            return answer
    except (ValueError, TypeError):
        pass
    return Result(Outcome.retry, Reason.server, str(response.status_code), "malformed answer")


class AccessToken:
    """One channel's cached token. `fetch` asks the vendor for a new one; thread-safe."""

    def __init__(self, fetch: Callable[[], httpx.Response], errors: Mapping[int, Rule], clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._errors = errors
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> str | Result:
        with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            try:
                response = self._fetch()
            except httpx.HTTPError as exc:
                return result_from_exception(exc)
            answer = read_answer(response)
            if isinstance(answer, Result):
                return answer
            if answer["errcode"] != 0:
                return result_for(self._errors, answer["errcode"])
            token, expires_in = answer.get("access_token"), answer.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                return Result(Outcome.retry, Reason.server, "0", "token answer without a token")
            self._token = token
            self._refresh_at = self._clock() + expires_in - min(REFRESH_AHEAD, expires_in / 2)
            return token

    def drop(self, token: str) -> None:
        """The vendor refused `token`: the next `get` fetches a new one (unless another thread already did)."""
        with self._lock:
            if self._token == token:
                self._token = None


def post_json(
    client: httpx.Client, token: AccessToken, url: str, body: bytes, token_errors: frozenset[int]
) -> dict[str, Any] | Result:
    """POST `body` with the access token; on a token errcode, once more with a fresh token.

    Returns the vendor's answer (errcode 0 or not) for the channel to judge, or the Result of a failure
    that never reached an answer (no token, transport error, bad HTTP status, malformed body)."""
    answer = _post_once(client, token, url, body, token_errors)
    if not isinstance(answer, Result) and answer["errcode"] in token_errors:
        answer = _post_once(client, token, url, body, token_errors)  # the refused token was dropped
    return answer


def _post_once(
    client: httpx.Client, token: AccessToken, url: str, body: bytes, token_errors: frozenset[int]
) -> dict[str, Any] | Result:
    current = token.get()
    if isinstance(current, Result):
        return current
    try:
        response = client.post(url, params={"access_token": current}, content=body,
                               headers={"Content-Type": "application/json; charset=utf-8"})
    except httpx.HTTPError as exc:
        return result_from_exception(exc)
    answer = read_answer(response)
    if not isinstance(answer, Result) and answer["errcode"] in token_errors:
        token.drop(current)
    return answer
