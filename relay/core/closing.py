"""How a request ends: the outcomes staff choose from, and when closing needs words to the parent."""

from __future__ import annotations

from relay.base.store import RequestRecord
from routing.labels import Urgency

# code -> what the parent and the nurse read; the codes are on the wire (POST .../resolve "outcome").
OUTCOMES: dict[str, str] = {
    "back_to_class": "回教室",
    "picked_up": "家长接回",
    "hospital": "送医",
    "other": "其他",
}

# An emergency or a today-request is not closed in silence: the parent hears how it ended.
MESSAGE_REQUIRED_FOR = (Urgency.P0, Urgency.P1)


def needs_message(record: RequestRecord) -> bool:
    """True when closing this request must carry a message: a P0/P1 whose parent has no reply yet."""
    return Urgency(record.urgency) in MESSAGE_REQUIRED_FOR and not record.replies


def outcome_words(code: str | None) -> dict[str, str] | None:
    if code is None or code not in OUTCOMES:
        return None
    return {"code": code, "text": OUTCOMES[code]}
