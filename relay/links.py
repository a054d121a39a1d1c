"""One-click acknowledgement links: single-purpose, expiring, unforgeable.

The link names the request and the person it was sent to; opening it shows a
confirmation button (so a chat app's link preview cannot acknowledge by itself),
and pressing it acknowledges as that person.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay import tokens
from relay.settings import Settings

ACK = "ack"


@dataclass(frozen=True)
class AckLink:
    school: str
    request_id: str
    staff_id: str


def ack_link(settings: Settings, school: str, request_id: str, staff_id: str) -> str:
    token = tokens.sign(
        {"purpose": ACK, "sch": school, "rid": request_id, "sid": staff_id},
        settings.signing_keys(),
        settings.link_ttl_seconds,
    )
    return f"{settings.public_url.rstrip('/')}/a/{token}"


def read_ack_link(settings: Settings, token: str) -> AckLink:
    claims = tokens.verify(token, settings.signing_keys())
    if claims.get("purpose") != ACK:
        raise tokens.TokenError("not an acknowledgement link")
    return AckLink(str(claims["sch"]), str(claims["rid"]), str(claims["sid"]))
