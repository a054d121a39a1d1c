"""The channels of this process, built once from settings (token caches live in them);
one shared httpx client keeps connections alive."""

from __future__ import annotations

import os

import httpx

from adapters.base import Channel
from adapters.dingtalk import DingTalkChannel
from adapters.miniprogram import MiniProgramChannel
from adapters.sms_aliyun import AliyunSmsChannel
from adapters.sms_tencent import TencentSmsChannel
from adapters.webhook import WebhookChannel
from adapters.wecom import WeComChannel
from relay.base import outbound
from relay.base.settings import Settings

NAMES = ("webhook", "wecom", "sms", "dingtalk", "miniprogram")
_LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=20)


class Channels:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.Client(
            timeout=settings.send_timeout_seconds,
            limits=_LIMITS,
        )
        # Contact URLs are written by administrators: their own client, whose transport checks every
        # address it connects to (relay/base/outbound.py). Vendor base URLs are the operator's and use the other.
        self.contact_client = httpx.Client(
            timeout=settings.send_timeout_seconds,
            transport=outbound.Transport(settings.allowed_private(), _LIMITS),
            trust_env=False,
        )
        self._built: dict[str, Channel | None] = {}

    def get(self, name: str) -> Channel | None:
        """The channel, or None when its credentials are not configured."""
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str) -> Channel | None:
        s, client, timeout = self.settings, self.client, self.settings.send_timeout_seconds
        if name == "webhook":
            return WebhookChannel(self.contact_client, s.webhook_secret, timeout=timeout)
        if name == "wecom" and s.wecom_corp_id and s.wecom_secret and s.wecom_agent_id:
            return WeComChannel(client, s.wecom_corp_id, s.wecom_secret, s.wecom_agent_id, s.wecom_base_url,
                                fallback_url=s.public_url)
        if name == "miniprogram" and s.wechat_app_id and s.wechat_app_secret and s.wechat_template_id:
            return MiniProgramChannel(client, s.wechat_app_id, s.wechat_app_secret, s.wechat_template_id,
                                      s.wechat_base_url)
        if name == "dingtalk":
            # Each robot may name its own secret's variable (`secret_env`); the adapter looks it up here.
            secrets = dict(os.environ)
            if s.dingtalk_secret:
                secrets.setdefault("RELAY_DINGTALK_SECRET", s.dingtalk_secret)
            if not any("DINGTALK" in key for key in secrets):
                return None
            return DingTalkChannel(self.contact_client, secrets, timeout=timeout)
        if name == "sms":
            return self._sms()
        return None

    def _sms(self) -> Channel | None:
        s, client, timeout = self.settings, self.client, self.settings.send_timeout_seconds
        common = (s.sms_access_key_id, s.sms_access_key_secret, s.sms_sign_name, s.sms_template_id)
        if not all(common):
            return None
        key_id, key_secret, sign_name, template_id = (str(v) for v in common)
        if s.sms_provider == "aliyun":
            return AliyunSmsChannel(client, key_id, key_secret, sign_name, template_id,
                                    region=s.sms_region or "cn-hangzhou", base_url=s.aliyun_sms_base_url,
                                    timeout=timeout)
        if s.sms_provider == "tencent" and s.sms_app_id:
            return TencentSmsChannel(client, key_id, key_secret, s.sms_app_id, sign_name, template_id,
                                     region=s.sms_region or "ap-guangzhou", base_url=s.tencent_sms_base_url,
                                     timeout=timeout)
        return None

    def configured(self) -> list[str]:
        return [name for name in NAMES if self.get(name)]
