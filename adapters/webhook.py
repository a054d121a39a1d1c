"""The generic webhook channel (DESIGN.md, "Webhook channel").

POST url with the JSON document and `X-Relay-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
Any 2xx is delivered; 429, 5xx and timeouts are worth retrying; other 4xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

import httpx

from adapters.base import Message, Result, delivered, result_from_exception, result_from_status

SIGNATURE_HEADER = "X-Relay-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def document(message: Message) -> dict[str, object]:
    return {
        "event": message.event,
        "event_id": message.event_id,
        # The recipient's own one-click acknowledgement link travels with the request.
        "request": dict(message.request, **({"ack_url": message.link} if message.link else {})),
        "recipient": dict(message.recipient),
        "attempt": message.attempt,
        "sent_at": message.sent_at,
    }


class WebhookChannel:
    name = "webhook"

    def __init__(self, client: httpx.Client, secret: str, timeout: float = 5.0) -> None:
        self._client = client
        self._secret = secret
        self._timeout = timeout

    def send(self, message: Message, address: Mapping[str, str]) -> Result:
        # Sign exactly the bytes we send: receivers verify the raw body.
        body = json.dumps(document(message), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(body, self._secret),
            "User-Agent": "Relay-Webhook/1",
        }
        try:
            response = self._client.post(address["url"], content=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return result_from_exception(exc)
        return result_from_status(response) or delivered(str(response.status_code))
