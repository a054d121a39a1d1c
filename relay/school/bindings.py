"""Which WeChat user is which guardian: one-time binding codes, bindings, and the guardian's consent.

The school hands a guardian a binding code (`relay binding-code create`, or an administrator in
the API). In the mini-program the guardian signs in with WeChat, types the code and agrees to the
privacy notice (relay/pages/templates/privacy.html), including the separate consent to processing their
child's health information; from then on their WeChat sign-in is that guardian.

A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), expires after
`binding_code_days` and works once. Codes, openids and refresh tokens are stored only as
SHA-256 digests, so a copy of Redis hands out none of them, with one exception: the openid of a
guardian's latest binding (keys.guardian_openid), because a subscribe message must be addressed
to it. It is never logged, and deleting the guardian's data deletes it.

Every key carries the school id; a code or an openid names no school, so finding one asks each
school (one pipelined round trip).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from relay.base import keys
from relay.base.runtime import Runtime
from relay.base.store import text

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalize_code(code: str) -> str:
    """What a person types: any case, with spaces or a dash (`k7pm-4qxd`)."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def _shown(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class BindingCode:
    code: str  # as shown to the guardian: "K7PM-4QXD"
    school_id: str
    guardian_id: str
    expires_at: str


def create_code(runtime: Runtime, school_id: str, guardian_id: str, days: int, created_by: str) -> BindingCode:
    """A new code for one guardian of one school (the caller checked that the guardian exists)."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    document = {"guardian_id": guardian_id, "created_by": created_by, "created_at": _now(),
                "expires_at": expires.isoformat(timespec="seconds")}
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if runtime.redis.set(keys.binding_code(school_id, digest(code)), json.dumps(document), nx=True,
                             ex=days * 86400):
            return BindingCode(_shown(code), school_id, guardian_id, document["expires_at"])


def redeem_code(runtime: Runtime, code: str) -> tuple[str, str] | None:
    """(school id, guardian id) for a valid code, which can never be used again; None otherwise."""
    code = normalize_code(code)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    schools = runtime.directories.school_ids()
    code_digest = digest(code)
    with runtime.redis.pipeline(transaction=False) as pipe:
        for school_id in schools:
            pipe.exists(keys.binding_code(school_id, code_digest))
        found = [s for s, exists in zip(schools, pipe.execute(), strict=True) if exists]
    for school_id in found:
        raw = runtime.redis.getdel(keys.binding_code(school_id, code_digest))  # the one who takes it, once
        if raw is not None:
            return school_id, str(json.loads(raw)["guardian_id"])
    return None


def bind(runtime: Runtime, school_id: str, guardian_id: str, openid: str, consent: dict[str, Any]) -> None:
    """The openid is this guardian from now on (replacing whoever it was before in this school)."""
    openid_digest = digest(openid)
    key = keys.binding(school_id, openid_digest)
    previous = runtime.redis.get(key)
    document = {"guardian_id": guardian_id, "bound_at": _now(),
                "consent": {"health_info": bool(consent.get("health_info")),
                            "notice_version": str(consent.get("notice_version")), "at": _now()}}
    previous_guardian = str(json.loads(previous)["guardian_id"]) if previous is not None else None
    previous_openid_key = keys.guardian_openid(school_id, previous_guardian) if previous_guardian else None
    stale_openid = (previous_guardian != guardian_id and previous_openid_key is not None
                    and text(runtime.redis.get(previous_openid_key) or b"") == openid)
    with runtime.redis.pipeline(transaction=True) as pipe:
        if previous_guardian is not None:
            pipe.srem(keys.guardian_bindings(school_id, previous_guardian), openid_digest)
        if stale_openid and previous_openid_key is not None:
            pipe.delete(previous_openid_key)  # the WeChat user is someone else's now: no more of their notices
        pipe.set(key, json.dumps(document))
        pipe.sadd(keys.guardian_bindings(school_id, guardian_id), openid_digest)
        # Status updates go to the latest binding (relay/core/notices.py queue_parent_notice).
        pipe.set(keys.guardian_openid(school_id, guardian_id), openid)
        pipe.execute()


def find_binding(runtime: Runtime, openid: str) -> tuple[str, str] | None:
    """(school id, guardian id) of the first school where this WeChat user is a guardian still in the directory."""
    schools = runtime.directories.school_ids()
    if not schools:
        return None
    openid_digest = digest(openid)
    with runtime.redis.pipeline(transaction=False) as pipe:
        for school_id in schools:
            pipe.get(keys.binding(school_id, openid_digest))
        answers = pipe.execute()
    for school_id, raw in zip(schools, answers, strict=True):
        if raw is None:
            continue
        guardian_id = str(json.loads(raw)["guardian_id"])
        found = runtime.directories.school(school_id)
        if found is not None and found[1].guardian(guardian_id) is not None:
            return school_id, guardian_id
    return None


def of_guardian(runtime: Runtime, school_id: str, guardian_id: str) -> list[dict[str, Any]]:
    """The guardian's bindings as they may see them: when, and what they consented to (no openids)."""
    digests = sorted(text(d) for d in runtime.redis.smembers(keys.guardian_bindings(school_id, guardian_id)))
    raws = runtime.redis.mget([keys.binding(school_id, d) for d in digests]) if digests else []
    shown = []
    for raw in raws:
        if raw is not None:
            document = json.loads(raw)
            shown.append({"bound_at": document.get("bound_at"), "consent": document.get("consent")})
    return shown


def binding_keys(runtime: Runtime, school_id: str, guardian_id: str) -> list[str]:
    """Every key that ties a WeChat user to this guardian (deleted with their data)."""
    digests = [text(d) for d in runtime.redis.smembers(keys.guardian_bindings(school_id, guardian_id))]
    return [keys.binding(school_id, d) for d in digests] + [keys.guardian_bindings(school_id, guardian_id)]
