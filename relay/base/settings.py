"""One Settings class: environment variables with the RELAY_ prefix, plus REDIS_URL."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR = Path(".relay")


class Settings(BaseSettings):
    # An empty variable means unset: a secrets file copied from deploy/secrets.env.example leaves many empty.
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore", env_file=None, env_ignore_empty=True)

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "RELAY_REDIS_URL"))
    # Redis high availability (README-ops.md): with sentinels (host:port,host:port,...) every process finds the
    # master of this name through them and follows a failover; REDIS_URL then gives only password and database.
    redis_sentinels: str | None = None
    redis_sentinel_master: str = "relay"
    # A 201 only once this many replicas hold the request (Redis WAIT, at most this long); else 503.
    intake_min_replicas: int = Field(default=0, ge=0)
    intake_replica_timeout_ms: int = Field(default=500, ge=1)
    config: str | None = None  # path of the school YAML (RELAY_CONFIG)
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None  # signs bearer tokens and links; unset: the dev key (dev_key_path)
    previous_secret_keys: str = ""  # comma-separated: tokens signed with these still verify (rotation)
    webhook_secret: str = ""
    # Contact URLs (webhook, DingTalk) may reach loopback or private addresses only in these ranges
    # (comma-separated CIDRs); link-local and cloud metadata addresses never (relay/base/outbound.py).
    webhook_allow_private: str = ""
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
    # A claimed timer whose batch has not handled it this long after the claim fires again (its worker
    # is presumed dead); must exceed the time a batch job may wait in its queue and run.
    timer_lease_seconds: float = 15.0
    worker_class: str = "simple"  # simple (no fork per job: the measured choice) | fork (RQ's default, for comparison)

    # An optional second opinion on urgency (relay/core/second_opinion.py): an OpenAI-compatible chat-completions
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
    # Retention (relay/core/retention.py; the laws behind the defaults: README-ops.md, "Retention"). A closed
    # request, its timeline and its delivery records are purged this many days after it closed; open ones never.
    retention_days: int = Field(default=180, ge=1)
    audit_retention_days: int = Field(default=180, ge=1)  # audit entries older than this are purged
    retention_export_dir: str = str(STATE_DIR / "retention")  # each purge writes what it deletes here first

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

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, value: str | None) -> str | None:
        from relay.base.sentinels import parse

        parse(value)  # a malformed address stops the process at start, named
        return value

    @field_validator("webhook_allow_private")
    @classmethod
    def _ranges(cls, value: str) -> str:
        from relay.base.outbound import parse_allowed

        parse_allowed(value)  # a range that is not a CIDR stops the process at start, named
        return value

    def allowed_private(self) -> tuple[IPv4Network | IPv6Network, ...]:
        from relay.base.outbound import parse_allowed

        return parse_allowed(self.webhook_allow_private)

    def signing_keys(self, create: bool = True) -> list[str]:
        """The current key first, then the ones still accepted during a rotation.

        Without RELAY_SECRET_KEY the current key is the dev key (`dev_key_path`); `create=False`
        (what `relay token` asks for) raises NoSigningKey rather than make a key nobody verifies with.
        """
        current = self.secret_key or _dev_secret(create)
        return [current] + [k.strip() for k in self.previous_secret_keys.split(",") if k.strip()]


class NoSigningKey(Exception):
    """Neither RELAY_SECRET_KEY nor a dev key: a token signed with a new key would get 401 everywhere."""


def dev_key_path() -> Path:
    """The dev key, one per user whatever the working directory: `relay token` run anywhere signs
    with the key `relay dev` verifies with. $XDG_CONFIG_HOME/relay/secret_key, else ~/.config/relay/."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "relay" / "secret_key"


def _dev_secret(create: bool = True) -> str:
    """The key `relay dev` and `relay token` share when RELAY_SECRET_KEY is unset; production sets it."""
    path = dev_key_path()
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise NoSigningKey(f"no signing key: RELAY_SECRET_KEY is not set and there is no dev key at {path} "
                           "(`relay dev` makes one); set RELAY_SECRET_KEY to the key the server uses")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
