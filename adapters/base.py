"""The one small interface every outbound channel implements.

    Channel.send(message, address) -> Result

A channel turns a `Message` into its vendor's wire format, sends it with the
httpx client it was given, and maps the vendor's answer to one of three
outcomes. It knows nothing of requests, Redis or routing: the delivery policy
(retries, fallback to the next contact, dead letters) lives in relay/.

Errors, as a tree:

    Result.outcome
    ├── delivered           the vendor accepted it
    ├── retry               worth trying again later (reason: rate_limited, server, timeout, auth)
    └── permanent           never worth retrying (reason: client, auth, not_configured, recipient)
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx


class Outcome(StrEnum):
    delivered = "delivered"
    retry = "retry"
    permanent = "permanent"


class Reason(StrEnum):
    ok = "ok"
    auth = "auth"
    rate_limited = "rate_limited"
    client = "client"
    server = "server"
    timeout = "timeout"
    recipient = "recipient"  # this recipient cannot be reached on this channel (unknown user, no subscription)
    not_configured = "not_configured"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: Reason
    vendor_code: str | None = None  # the vendor's own error code, for the timeline
    detail: str = ""  # short, never a secret, a phone number or message text
    retry_after: float | None = None  # seconds, when the vendor said

    @property
    def delivered(self) -> bool:
        return self.outcome is Outcome.delivered


def delivered(vendor_code: str | None = None) -> Result:
    return Result(Outcome.delivered, Reason.ok, vendor_code)


@dataclass(frozen=True)
class Message:
    """One notification to one person, already worded for channels that are not private.

    `title` and `body` carry no diagnosis and no child's full name ("三年级2班 张同学
    身体不适（紧急）"); the details stay behind `link`. `request` is the structured
    document for machine receivers (the webhook channel).
    """

    event: str  # request.created, request.urgent, request.escalated, request.fyi, ...
    event_id: str  # stable across retries: receivers drop duplicates by it
    attempt: int
    sent_at: str  # ISO-8601
    urgency: str
    title: str
    body: str
    link: str | None
    recipient: Mapping[str, Any]  # {"id", "name", "role"}
    request: Mapping[str, Any] = field(default_factory=dict)
    # The urgent-alert SMS template's parameters, in order: class, masked name, category words, link.
    sms_params: tuple[str, ...] = ()
    # A parent's status message: the request's state in a word (已受理, 已分配, 已回复), from relay's event table.
    status: str | None = None
    # A few words of the parent's message, names and numbers masked: only for a channel that reaches one
    # person privately (a WeCom application message), never for SMS or a group robot.
    excerpt: str = ""


class Channel(Protocol):
    name: str

    def send(self, message: Message, address: Mapping[str, str]) -> Result: ...


def result_from_status(response: httpx.Response) -> Result | None:
    """The shared HTTP status check (Alertmanager's Retrier): None when the status says 2xx.

    429 and 5xx are worth retrying; any other 4xx is permanent. Vendors that answer
    200 with an error code in the body map the body themselves.
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    retry_after = _retry_after(response)
    if status == 429:
        return Result(Outcome.retry, Reason.rate_limited, str(status), "rate limited", retry_after)
    if status in (401, 403):
        return Result(Outcome.permanent, Reason.auth, str(status), "refused our credentials")
    if status >= 500:
        return Result(Outcome.retry, Reason.server, str(status), "server error", retry_after)
    if status == 408:
        return Result(Outcome.retry, Reason.timeout, str(status), "request timeout")
    return Result(Outcome.permanent, Reason.client, str(status), "rejected")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class AddressRefused(httpx.TransportError):
    """The caller's transport would not connect to the address the URL resolved to (a private, link-local
    or metadata address): no retry will change that, the person's next contact should be tried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def result_from_exception(exc: httpx.HTTPError) -> Result:
    """Transport errors: a timeout or a refused connection is worth retrying; a refused address is not."""
    if isinstance(exc, AddressRefused):
        return Result(Outcome.permanent, Reason.client, "address_refused", exc.reason)
    if isinstance(exc, httpx.TimeoutException):
        return Result(Outcome.retry, Reason.timeout, None, type(exc).__name__)
    if isinstance(exc, httpx.TransportError):
        return Result(Outcome.retry, Reason.server, None, type(exc).__name__)
    return Result(Outcome.permanent, Reason.client, None, type(exc).__name__)


def not_configured(what: str) -> Result:
    return Result(Outcome.permanent, Reason.not_configured, None, f"{what} is not configured")


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: a vendor that comes back is not hit by a synchronized storm."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)
