"""Signed bearer tokens and one-click links.

A token is `<kid>.<payload>.<signature>` (base64url, HMAC-SHA256). The key id lets a
secret rotate without logging everyone out: tokens signed with a previous key
(RELAY_PREVIOUS_SECRET_KEYS) still verify until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any


class TokenError(Exception):
    """Missing, malformed, forged or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _mac(key: str, message: str) -> str:
    return _b64(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest())


def sign(claims: dict[str, Any], keys: list[str], ttl_seconds: int, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    body = dict(claims, iat=issued, exp=issued + ttl_seconds)
    kid = key_id(keys[0])
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{kid}.{payload}.{_mac(keys[0], kid + '.' + payload)}"


def verify(token: str, keys: list[str], now: float | None = None) -> dict[str, Any]:
    try:
        kid, payload, signature = token.split(".")
    except ValueError as exc:
        raise TokenError("malformed token") from exc
    key = next((k for k in keys if key_id(k) == kid), None)
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may carry any latin-1 byte.
    if key is None or not hmac.compare_digest(_mac(key, kid + "." + payload).encode(), signature.encode()):
        raise TokenError("bad signature")
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(claims, dict) or claims.get("exp", 0) < (now if now is not None else time.time()):
        raise TokenError("expired token")
    return claims


@dataclass(frozen=True)
class Caller:
    kind: str  # parent | staff
    id: str  # guardian id or staff id
    school: str | None


def caller_token(kind: str, subject: str, school: str | None, keys: list[str], ttl_seconds: int) -> str:
    claims: dict[str, Any] = {"k": kind, "sub": subject}
    if school:
        claims["sch"] = school
    return sign(claims, keys, ttl_seconds)


def read_caller(token: str, keys: list[str]) -> Caller:
    claims = verify(token, keys)
    if claims.get("k") not in ("parent", "staff") or not isinstance(claims.get("sub"), str):
        raise TokenError("not a caller token")
    if "purpose" in claims:
        raise TokenError("a link is not a bearer token")
    return Caller(claims["k"], claims["sub"], claims.get("sch"))
