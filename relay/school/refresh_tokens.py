"""Parents' refresh tokens: opaque, rotating, stored as digests so that each can be revoked.

A refresh token is `<school>.<random>`; Redis keeps only the SHA-256 of it, with the guardian
it belongs to, for `refresh_token_ttl_seconds`. Using one retires it (GETDEL: it works once)
and hands out a new one. A retired token presented again means two parties hold it, so every
refresh token of that guardian is revoked: the real parent signs in again with WeChat, which the
mini-program does silently, and the thief is out.
"""

from __future__ import annotations

import secrets

from relay.base import keys
from relay.base.runtime import Runtime
from relay.base.store import text
from relay.school.bindings import digest


class RefreshRefused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code  # invalid_refresh_token | refresh_token_reused


def issue(runtime: Runtime, school_id: str, guardian_id: str) -> str:
    token = f"{school_id}.{secrets.token_urlsafe(32)}"
    ttl = runtime.settings.refresh_token_ttl_seconds
    token_digest = digest(token)
    with runtime.redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.refresh_token(school_id, token_digest), guardian_id, ex=ttl)
        pipe.sadd(keys.guardian_refresh_tokens(school_id, guardian_id), token_digest)
        pipe.expire(keys.guardian_refresh_tokens(school_id, guardian_id), ttl)
        pipe.execute()
    return token


def rotate(runtime: Runtime, token: str) -> tuple[str, str, str]:
    """(school id, guardian id, the new refresh token); RefreshRefused otherwise."""
    school_id, _, random_part = token.rpartition(".")
    if not school_id or len(random_part) < 32 or runtime.directories.school(school_id) is None:
        raise RefreshRefused("invalid_refresh_token")
    token_digest = digest(token)
    r = runtime.redis
    owner = r.getdel(keys.refresh_token(school_id, token_digest))
    if owner is None:
        reused = r.get(keys.refresh_token_used(school_id, token_digest))
        if reused is not None:
            revoke_all(runtime, school_id, text(reused))
            raise RefreshRefused("refresh_token_reused")
        raise RefreshRefused("invalid_refresh_token")
    guardian_id = text(owner)
    with r.pipeline(transaction=True) as pipe:
        pipe.set(keys.refresh_token_used(school_id, token_digest), guardian_id,
                 ex=runtime.settings.refresh_token_ttl_seconds)
        pipe.srem(keys.guardian_refresh_tokens(school_id, guardian_id), token_digest)
        pipe.execute()
    return school_id, guardian_id, issue(runtime, school_id, guardian_id)


def revoke(runtime: Runtime, token: str) -> bool:
    """Sign-out on one device: its refresh token stops working at once; False if it was not live."""
    school_id, _, random_part = token.rpartition(".")
    if not school_id or len(random_part) < 32:
        return False
    token_digest = digest(token)
    owner = runtime.redis.getdel(keys.refresh_token(school_id, token_digest))
    if owner is None:
        return False
    runtime.redis.srem(keys.guardian_refresh_tokens(school_id, text(owner)), token_digest)
    return True


def revoke_all(runtime: Runtime, school_id: str, guardian_id: str) -> int:
    """Revoke every refresh token of the guardian; returns how many were live."""
    r = runtime.redis
    index = keys.guardian_refresh_tokens(school_id, guardian_id)
    digests = [text(d) for d in r.smembers(index)]
    with r.pipeline(transaction=True) as pipe:
        for token_digest in digests:
            pipe.delete(keys.refresh_token(school_id, token_digest))
        pipe.delete(index)
        answers = pipe.execute()
    return sum(int(a) for a in answers[: len(digests)])
