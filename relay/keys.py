"""Every Redis key Relay writes, built in one place. Every key but the school registry carries the school id."""

SCHOOLS = "relay:schools"  # set of school ids with a published directory


def directory_current(school: str) -> str:
    return f"relay:{school}:directory:current"


def directory_version(school: str, version: int) -> str:
    return f"relay:{school}:directory:v:{version}"


def request(school: str, request_id: str) -> str:
    return f"relay:{school}:request:{request_id}"


def timeline(school: str, request_id: str) -> str:
    return f"relay:{school}:timeline:{request_id}"


def guardian_requests(school: str, guardian_id: str) -> str:
    return f"relay:{school}:guardian:{guardian_id}:requests"


def open_requests(school: str) -> str:
    """Open requests by due time (score: epoch seconds of the next due time)."""
    return f"relay:{school}:open"


def idempotency(school: str, guardian_id: str, key_digest: str) -> str:
    return f"relay:{school}:idem:{guardian_id}:{key_digest}"


def delivery(school: str, event_id: str) -> str:
    return f"relay:{school}:delivery:{event_id}"


def delivery_lock(school: str, event_id: str) -> str:
    return f"relay:{school}:delivery:{event_id}:lock"


def timers(school: str) -> str:
    """Timer ids by due time (score: epoch milliseconds)."""
    return f"relay:{school}:timers"


def timer(school: str, timer_id: str) -> str:
    return f"relay:{school}:timer:{timer_id}"


def outbox(school: str) -> str:
    return f"relay:{school}:outbox"


def dead_letters(school: str) -> str:
    return f"relay:{school}:deadletters"


def link_used(school: str, link_id: str) -> str:
    return f"relay:{school}:link:{link_id}"


def digest(school: str, staff_id: str) -> str:
    """Request ids held out of hours for one person's morning digest."""
    return f"relay:{school}:digest:{staff_id}"


def outbreak(school: str, class_id: str) -> str:
    """Contagious reports from one class by time (score: epoch seconds)."""
    return f"relay:{school}:outbreak:{class_id}"


def outbreak_alerted(school: str, class_id: str) -> str:
    return f"relay:{school}:outbreak:{class_id}:alerted"


def events(school: str) -> str:
    """Pub/sub channel: a small JSON message each time a request of the school is created or changes."""
    return f"relay:{school}:events"


def staff_session(school: str, session_digest: str) -> str:
    """A signed-in staff member's page session (keyed by a digest: the cookie itself is never stored)."""
    return f"relay:{school}:session:{session_digest}"


def sign_in_link(school: str, nonce_digest: str) -> str:
    """A one-time sign-in link not used yet (keyed by a digest of its nonce)."""
    return f"relay:{school}:signin:{nonce_digest}"


def sign_in_requests(school: str, staff_id: str) -> str:
    """How many sign-in links one person asked for in the current window (a rate limit)."""
    return f"relay:{school}:signin-requests:{staff_id}"


def canned_replies(school: str) -> str:
    """A school's own canned replies (JSON), replacing the defaults in relay/canned_replies.yaml."""
    return f"relay:{school}:canned_replies"
