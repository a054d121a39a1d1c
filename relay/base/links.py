"""One-click acknowledgement links: short, single-purpose, expiring, unforgeable.

What a staff member receives is `RELAY_PUBLIC_URL/a/CODE`, a 12-character code, because an SMS
template variable holds at most 35 characters (Alibaba Cloud) and a card or a chat text reads
better without 250 characters of token. The code is only a pointer: Redis keeps, under the
school's own key, the signed grant it stands for (a token naming the purpose, the school, the
request and the person, with its expiry), and the grant is verified on every use, so a code
alone grants nothing once the grant has expired, and a Redis write alone cannot forge one.

How /a/CODE finds its school without a global index (every key stays school-scoped, so a
district can still shard by school): the code's first two characters are a tag derived from the
school id; the page looks the code up only in the schools with that tag (about one in 3,844).
The other ten characters are random (about 59 bits): unguessable within a link's lifetime.

Opening a link shows a confirmation button (so a chat app's link preview cannot acknowledge by
itself); pressing it acknowledges as that person, if they are still in the school's current
directory and may still act on the request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from relay.base import keys, tokens
from relay.base.settings import Settings
from relay.base.store import text

ACK = "ack"
ALPHABET = string.ascii_letters + string.digits  # no "-" or "_": SMS apps cut a link at them
TAG_LENGTH = 2
RANDOM_LENGTH = 10
CODE_LENGTH = TAG_LENGTH + RANDOM_LENGTH
CODE = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")


@dataclass(frozen=True)
class AckLink:
    school: str
    request_id: str
    staff_id: str


def school_tag(school: str) -> str:
    """Two characters that narrow a code down to a few schools (never secret, never unique)."""
    number = int.from_bytes(hashlib.sha256(school.encode()).digest()[:8], "big")
    return "".join(ALPHABET[(number // len(ALPHABET) ** i) % len(ALPHABET)] for i in range(TAG_LENGTH))


def url_for(settings: Settings, code: str) -> str:
    return f"{settings.public_url.rstrip('/')}/a/{code}"


def grant(settings: Settings, school: str, request_id: str, staff_id: str) -> str:
    """The signed grant a code stands for (also what links sent before short codes carried)."""
    return tokens.sign(
        {"purpose": ACK, "sch": school, "rid": request_id, "sid": staff_id},
        settings.signing_keys(),
        settings.link_ttl_seconds,
    )


def issue(connection: redis.Redis, settings: Settings, school: str, request_id: str, staff_id: str,
          delivery_id: str) -> str:
    """The code for one notification's link; a retry of the same notification gets the same code."""
    ttl = settings.link_ttl_seconds
    mine = keys.delivery_ack_code(school, delivery_id)
    existing = connection.get(mine)
    if existing is not None and connection.exists(keys.ack_code(school, text(existing))):
        return text(existing)
    signed = grant(settings, school, request_id, staff_id)
    tag = school_tag(school)
    while True:
        code = tag + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
        # NX: a code is never reused for another grant, however unlikely the draw.
        if connection.set(keys.ack_code(school, code), signed, ex=ttl, nx=True):
            break
    connection.set(mine, code, ex=ttl)
    return code


def read_ack_link(settings: Settings, token: str) -> AckLink:
    """A signed grant, checked: signature, expiry and purpose."""
    claims = tokens.verify(token, settings.signing_keys())
    if claims.get("purpose") != ACK:
        raise tokens.TokenError("not an acknowledgement link")
    return AckLink(str(claims["sch"]), str(claims["rid"]), str(claims["sid"]))


def resolve(connection: redis.Redis, settings: Settings, school_ids: Iterable[str], code: str) -> AckLink:
    """What /a/CODE grants. Raises TokenError for a code that is malformed, unknown, expired or forged.

    A path with dots is a whole signed grant, as links were sent before short codes; those still
    work until they expire (24 h), so that no emergency link in flight during an upgrade breaks."""
    if "." in code:
        return read_ack_link(settings, code)
    if not CODE.match(code):
        raise tokens.TokenError("malformed link")
    tag = code[:TAG_LENGTH]
    for school in school_ids:
        if school_tag(school) != tag:
            continue
        stored = connection.get(keys.ack_code(school, code))
        if stored is None:
            continue
        link = read_ack_link(settings, text(stored))
        if link.school != school:
            raise tokens.TokenError("link of another school")
        return link
    raise tokens.TokenError("unknown or expired link")
