"""Parents sign in with WeChat; a school's binding code ties their WeChat account to a guardian.

    POST /v1/auth/wechat   {"code"}            wx.login's code -> tokens, or a binding token when not bound yet
    POST /v1/auth/bind     {"binding_token", "binding_code", "consent": {"health_info": true, "notice_version"}}
    POST /v1/auth/refresh  {"refresh_token"}   a new access token and a new refresh token (the old one is spent)
    POST /v1/auth/sign-out {"refresh_token"}   this device's refresh token revoked
    POST /v1/admin/binding-codes {"guardian_id", "days"?}   an administrator or the principal makes a code

Access tokens are the same bearer tokens `relay token parent` prints, short-lived (2 h);
refresh tokens are opaque and rotate (relay/school/refresh_tokens.py). The binding token carries the
openid, signed, for 10 minutes: the client can read it (it is its own openid) but not forge it.
Each endpoint is rate-limited per client address, binding attempts also per WeChat user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from adapters.base import Reason
from adapters.miniprogram import LoginError, MiniProgramLogin
from relay.api.bodies import parse, read_json
from relay.api.deps import RuntimeDep, ShardsDep, StaffOfSchool
from relay.api.errors import ApiError, documented
from relay.base import tokens
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.core import audit, ratelimit
from relay.school import bindings, privacy_notice, refresh_tokens
from routing.directory import Role

router = APIRouter(prefix="/v1", tags=["auth"], responses=documented(400, 401, 403, 404, 413, 415, 422, 429, 503))

BINDING_PURPOSE = "bind"
CODE_ISSUERS = (Role.admin, Role.principal)


class WeChatCode(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str = Field(min_length=1, max_length=128)


class Consent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    health_info: StrictBool = False  # true, not "yes" or 1: consent is given explicitly
    notice_version: str = Field(default="", max_length=32)


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    binding_token: str = Field(min_length=1, max_length=2048)
    binding_code: str = Field(min_length=1, max_length=32)
    consent: Consent | None = None


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: str = Field(min_length=1, max_length=512)


class NewBindingCode(BaseModel):
    model_config = ConfigDict(extra="ignore")
    guardian_id: str = Field(min_length=1, max_length=64)
    days: int | None = Field(default=None, ge=1, le=90)


class PrivacyNotice(BaseModel):
    version: str
    url: str


class SignedIn(BaseModel):
    bound: Literal[True] = True
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    school_id: str
    guardian_id: str


class NotBound(BaseModel):
    bound: Literal[False] = False
    binding_token: str
    expires_in: int
    privacy_notice: PrivacyNotice


class BindingCodeView(BaseModel):
    code: str
    school_id: str
    guardian_id: str
    expires_at: str


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@lru_cache(maxsize=8)
def _wechat(runtime: Runtime) -> MiniProgramLogin:
    settings = runtime.settings
    client = httpx.Client(timeout=settings.send_timeout_seconds)
    return MiniProgramLogin(client, settings.wechat_app_id, settings.wechat_app_secret, settings.wechat_base_url)


def _address(request: Request) -> str:
    return ratelimit.client_address(request.client.host if request.client else None)


def _signed_in(runtime: Runtime, school_id: str, guardian_id: str) -> SignedIn:
    settings = runtime.settings
    access = tokens.caller_token("parent", guardian_id, school_id, settings.signing_keys(),
                                 settings.access_token_ttl_seconds)
    return SignedIn(access_token=access, expires_in=settings.access_token_ttl_seconds,
                    refresh_token=refresh_tokens.issue(runtime, school_id, guardian_id),
                    refresh_expires_in=settings.refresh_token_ttl_seconds, school_id=school_id,
                    guardian_id=guardian_id)


def _login_refused(exc: LoginError) -> ApiError:
    if exc.reason is Reason.client:
        return ApiError(401, "invalid_code", "微信登录凭证无效或已使用，请重试 (the WeChat login code is invalid or used)")
    if exc.reason is Reason.recipient:
        return ApiError(403, "wechat_refused", "微信拒绝了此次登录 (WeChat refused this sign-in)")
    log.error("wechat_login_failed", reason=exc.reason.value, vendor_code=exc.code)
    return ApiError(503, "wechat_unavailable", "微信登录暂时不可用，请稍后重试 (WeChat sign-in is unavailable)",
                    {"Retry-After": "5"})


@router.post("/auth/wechat", response_model=SignedIn | NotBound, openapi_extra=_body_schema(WeChatCode))
async def wechat_sign_in(request: Request, runtime: RuntimeDep, shards: ShardsDep) -> SignedIn | NotBound:
    """Exchange wx.login's code: tokens for a bound guardian, else a binding token (10 minutes)."""
    ratelimit.check(runtime, runtime.settings.rate_limit_ip, "ip", "auth", _address(request))
    body = parse(WeChatCode, await read_json(request, runtime.settings.max_body_bytes))
    try:
        session = await run_in_threadpool(_wechat(runtime).code_to_session, body.code)
    except LoginError as exc:
        raise _login_refused(exc) from None
    for shard in shards.runtimes.values():  # the WeChat user's school, wherever it is kept
        found = bindings.find_binding(shard, session.openid)
        if found is not None:
            log.info("wechat_signed_in", school_id=found[0], guardian_id=found[1])
            return _signed_in(shard, *found)
    settings = runtime.settings
    binding_token = tokens.sign({"purpose": BINDING_PURPOSE, "oid": session.openid}, settings.signing_keys(),
                                settings.binding_token_ttl_seconds)
    log.info("wechat_not_bound")
    return NotBound(binding_token=binding_token, expires_in=settings.binding_token_ttl_seconds,
                    privacy_notice=PrivacyNotice(**privacy_notice.notice(settings.public_url)))


def _openid(runtime: Runtime, binding_token: str) -> str:
    try:
        claims = tokens.verify(binding_token, runtime.settings.signing_keys())
    except tokens.TokenError as exc:
        raise ApiError(401, "invalid_binding_token", "绑定已超时，请重新登录 (the binding token is invalid or expired)") from exc
    openid = claims.get("oid")
    if claims.get("purpose") != BINDING_PURPOSE or not isinstance(openid, str) or not openid:
        raise ApiError(401, "invalid_binding_token", "绑定已超时，请重新登录 (not a binding token)")
    return openid


@router.post("/auth/bind", response_model=SignedIn, openapi_extra=_body_schema(BindRequest))
async def bind(request: Request, runtime: RuntimeDep, shards: ShardsDep) -> SignedIn:
    """Bind the WeChat user to the guardian the school's one-time code names, with their consent."""
    settings = runtime.settings
    address = _address(request)
    ratelimit.check(runtime, settings.rate_limit_ip, "ip", "auth", address)
    ratelimit.check(runtime, settings.rate_limit_bind_ip, "ip", "bind", address)
    body = parse(BindRequest, await read_json(request, settings.max_body_bytes))
    openid = _openid(runtime, body.binding_token)
    # Guessing codes is what this limit is for: counted per WeChat user, before the code is looked at.
    ratelimit.check(runtime, settings.rate_limit_bind, "openid", bindings.digest(openid))
    consent = body.consent
    if consent is None or not consent.health_info or consent.notice_version != privacy_notice.NOTICE_VERSION:
        raise ApiError(422, "consent_required",
                       f"请阅读并同意隐私说明（含孩子健康信息的单独同意），版本 {privacy_notice.NOTICE_VERSION} "
                       f"(consent to the privacy notice version {privacy_notice.NOTICE_VERSION}, health information included)")
    redeemed = None
    for shard in shards.runtimes.values():  # the code was made on its school's shard
        redeemed = bindings.redeem_code(shard, body.binding_code)
        if redeemed is not None:
            runtime = shard
            break
    found = runtime.directories.school(redeemed[0]) if redeemed else None
    if redeemed is None or found is None or found[1].guardian(redeemed[1]) is None:
        raise ApiError(404, "invalid_binding_code", "绑定码无效、已使用或已过期 (the binding code is unknown, used or expired)")
    school_id, guardian_id = redeemed
    bindings.bind(runtime, school_id, guardian_id, openid, consent.model_dump())
    log.info("guardian_bound", school_id=school_id, guardian_id=guardian_id, notice_version=consent.notice_version)
    return _signed_in(runtime, school_id, guardian_id)


@router.post("/auth/refresh", response_model=SignedIn, openapi_extra=_body_schema(RefreshRequest))
async def refresh(request: Request, runtime: RuntimeDep, shards: ShardsDep) -> SignedIn:
    """A new access token for a refresh token, which is spent: the answer carries its successor."""
    ratelimit.check(runtime, runtime.settings.rate_limit_ip, "ip", "auth", _address(request))
    body = parse(RefreshRequest, await read_json(request, runtime.settings.max_body_bytes))
    # A refresh token begins with its school (refresh_tokens.issue): that school's shard keeps it.
    runtime = shards.for_school(body.refresh_token.rpartition(".")[0]) or runtime
    try:
        school_id, guardian_id, successor = refresh_tokens.rotate(runtime, body.refresh_token)
    except refresh_tokens.RefreshRefused as exc:
        if exc.code == "refresh_token_reused":
            log.warning("refresh_token_reused")
        raise ApiError(401, exc.code, "登录已失效，请重新登录 (the refresh token is not valid)") from None
    found = runtime.directories.school(school_id)
    if found is None or found[1].guardian(guardian_id) is None:
        refresh_tokens.revoke_all(runtime, school_id, guardian_id)
        raise ApiError(401, "unknown_guardian", "未找到该家长 (the guardian is no longer in the directory)")
    settings = runtime.settings
    access = tokens.caller_token("parent", guardian_id, school_id, settings.signing_keys(),
                                 settings.access_token_ttl_seconds)
    return SignedIn(access_token=access, expires_in=settings.access_token_ttl_seconds, refresh_token=successor,
                    refresh_expires_in=settings.refresh_token_ttl_seconds, school_id=school_id,
                    guardian_id=guardian_id)


class SignedOut(BaseModel):
    signed_out: bool  # false: the token was already spent, expired or unknown (signing out twice is fine)


@router.post("/auth/sign-out", response_model=SignedOut, openapi_extra=_body_schema(RefreshRequest))
async def sign_out(request: Request, runtime: RuntimeDep, shards: ShardsDep) -> SignedOut:
    """Sign-out on this device: its refresh token is revoked at once (the short-lived access token lapses by
    itself). Holding the refresh token is the proof; nothing else of the guardian's changes."""
    ratelimit.check(runtime, runtime.settings.rate_limit_ip, "ip", "auth", _address(request))
    body = parse(RefreshRequest, await read_json(request, runtime.settings.max_body_bytes))
    runtime = shards.for_school(body.refresh_token.rpartition(".")[0]) or runtime
    done = refresh_tokens.revoke(runtime, body.refresh_token)
    if done:
        log.info("guardian_signed_out")
    return SignedOut(signed_out=done)


@router.post("/admin/binding-codes", status_code=201, response_model=BindingCodeView,
             openapi_extra=_body_schema(NewBindingCode))
async def create_binding_code(request: Request, staff: StaffOfSchool, runtime: RuntimeDep) -> BindingCodeView:
    """A one-time binding code for a guardian of the caller's school (administrators and the principal)."""
    if not any(role in staff.member.roles for role in CODE_ISSUERS):
        raise ApiError(403, "admins_only", "仅限管理员和校长 (administrators and the principal only)")
    body = parse(NewBindingCode, await read_json(request, runtime.settings.max_body_bytes))
    if staff.school.guardian(body.guardian_id) is None:
        raise ApiError(404, "unknown_guardian", "未找到该家长 (no such guardian in your school)")
    made = bindings.create_code(runtime, staff.school.id, body.guardian_id,
                                body.days or runtime.settings.binding_code_days, created_by=staff.id)
    audit.record(runtime.redis, staff.school.id, staff.id, "binding_code_created", "")
    return BindingCodeView(code=made.code, school_id=made.school_id, guardian_id=made.guardian_id,
                           expires_at=made.expires_at)
