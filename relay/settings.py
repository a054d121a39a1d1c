"""One Settings class: environment variables with the RELAY_ prefix, plus REDIS_URL."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR = Path(".relay")


class Settings(BaseSettings):
    # An empty variable means unset: a secrets file copied from deploy/secrets.env.example leaves many empty.
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore", env_file=None, env_ignore_empty=True)

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "RELAY_REDIS_URL"))
    config: str | None = None  # path of the school YAML (RELAY_CONFIG)
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None  # signs bearer tokens and links; a dev key is made under .relay/ if unset
    previous_secret_keys: str = ""  # comma-separated: tokens signed with these still verify (rotation)
    webhook_secret: str = ""
    queue_prefix: str = "relay"  # RQ queue names; tests give each run its own
    dev_outbox: bool = False  # channels without credentials deliver to the dev outbox (relay dev)

    # Delivery policy
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    retry_max_attempts: int = 6
    send_timeout_seconds: float = 5.0
    # A delivery not finished this long after it started is taken over by another worker
    # (the first one is presumed dead); must exceed send_timeout_seconds.
    delivery_lease_seconds: float = 8.0
    # P0: an unacknowledged notification falls back to the person's next contact after this long.
    fallback_after_seconds: float = 90.0
    timer_poll_seconds: float = 0.05
    worker_class: str = "simple"  # simple (no fork per job: the measured choice) | fork (RQ's default, for comparison)

    # An optional second opinion on urgency (relay/second_opinion.py): an OpenAI-compatible chat-completions
    # API the school or district runs. Off while the URL is unset.
    triage_llm_url: str | None = None
    triage_llm_model: str | None = None
    triage_llm_key: str | None = None
    triage_llm_timeout_seconds: float = 8.0

    # Intake limits
    max_text_chars: int = 2000
    max_body_bytes: int = 16384
    token_ttl_seconds: int = 30 * 86400
    link_ttl_seconds: int = 24 * 3600
    max_json_depth: int = 8  # deeper nesting is refused (422 invalid_body): no real body needs it
    # Load shedding (relay/shedding.py): with more POST /v1/requests than this in flight in one API process,
    # a message that does not classify P0 gets 503 with Retry-After at once; 0 never sheds.
    intake_max_in_flight: int = 32

    # Trust and abuse (SECURITY.md). Parents sign in through WeChat: short access tokens, rotating refresh tokens.
    access_token_ttl_seconds: int = 2 * 3600
    refresh_token_ttl_seconds: int = 30 * 86400
    binding_token_ttl_seconds: int = 600
    binding_code_days: int = 14
    # `limits` notation, several windows separated by ";". Per guardian and per client address on
    # POST /v1/requests (a message that classifies P0 is accepted even over the limit); per client
    # address on the auth endpoints; per WeChat user and per address on binding attempts.
    # A parent writing more than 30 messages a minute is flooding; a P0 still gets through (api/requests.py).
    rate_limit_guardian: str = "30/minute;500/day"
    # Generous: many parents share one carrier-NAT address, and a school's own tools post from one host.
    rate_limit_ip: str = "3000/minute"
    # How often a guardian may mark requests urgent (at submission or afterwards): bounds the pages it causes.
    rate_limit_urgent: str = "5/hour;20/day"
    rate_limit_bind: str = "5/10 minutes;20/day"
    rate_limit_bind_ip: str = "30/10 minutes;300/day"  # a parents' meeting binds from the school's Wi-Fi
    retention_days: int = 365  # requests and their timelines older than this are purged daily

    # Vendors (names fixed by DESIGN.md)
    wecom_corp_id: str | None = None
    wecom_secret: str | None = None
    wecom_agent_id: str | None = None
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = None
    wechat_template_id: str | None = None
    wechat_base_url: str = "https://api.weixin.qq.com"
    dingtalk_secret: str | None = None
    sms_provider: str | None = None  # aliyun | tencent
    sms_access_key_id: str | None = None
    sms_access_key_secret: str | None = None
    sms_sign_name: str | None = None
    sms_template_id: str | None = None
    sms_region: str | None = None
    sms_app_id: str | None = None
    aliyun_sms_base_url: str = "https://dysmsapi.aliyuncs.com"
    tencent_sms_base_url: str = "https://sms.tencentcloudapi.com"

    log_level: str = "info"
    # Operations (deploy/): a worker serves /metrics on this port, and its timer loop touches this file
    # every few seconds for an exec liveness probe.
    metrics_port: int | None = None
    heartbeat_file: str | None = None
    # When set, the API's GET /metrics answers only `Authorization: Bearer <this>` (Prometheus:
    # `authorization: {credentials_file: ...}`); unset, it is open, as on a laptop (README-ops.md).
    metrics_token: str | None = None

    def signing_keys(self) -> list[str]:
        """The current key first, then the ones still accepted during a rotation."""
        current = self.secret_key or _dev_secret()
        return [current] + [k.strip() for k in self.previous_secret_keys.split(",") if k.strip()]


def _dev_secret() -> str:
    """A per-checkout key for `relay dev` and `relay token` run side by side; production sets RELAY_SECRET_KEY."""
    path = STATE_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    STATE_DIR.mkdir(exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
