"""The channels of this process, built from settings; one shared httpx client (kept-alive connections)."""

from __future__ import annotations

import httpx

from adapters.base import Channel
from adapters.webhook import WebhookChannel
from relay.settings import Settings


class Channels:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.Client(
            timeout=settings.send_timeout_seconds,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._built: dict[str, Channel | None] = {}

    def get(self, name: str) -> Channel | None:
        """The channel, or None when its credentials are not configured."""
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str) -> Channel | None:
        s = self.settings
        if name == "webhook":
            return WebhookChannel(self.client, s.webhook_secret, timeout=s.send_timeout_seconds)
        return None

    def configured(self) -> list[str]:
        return [name for name in ("webhook", "wecom", "sms", "dingtalk", "miniprogram") if self.get(name)]
