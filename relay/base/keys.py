"""Every Redis key Relay writes, built in one place. Every key but the school registry carries the school id."""

SCHOOLS = "relay:schools"  # set of school ids with a published directory


def directory_current(school: str) -> str:
    return f"relay:{school}:directory:current"


def directory_version(school: str, version: int) -> str:
    return f"relay:{school}:directory:v:{version}"


def directory_seq(school: str) -> str:
    """The last version number handed out (a restored version is published under a new number)."""
    return f"relay:{school}:directory:current:seq"


def directory_versions(school: str) -> str:
    """What each kept version is (JSON: who published it, why, how big), by version number."""
    return f"relay:{school}:directory:versions"


def directory_seeded(school: str) -> str:
    """Digest of the school as RELAY_CONFIG last wrote it: an unchanged file is not published again at start."""
    return f"relay:{school}:directory:seeded"


def staged_import(school: str, import_id: str) -> str:
    """A checked roster import waiting for an administrator to apply it."""
    return f"relay:{school}:admin:import:{import_id}"


def admin_log(school: str) -> str:
    """The school's administration changes, newest first (JSON entries)."""
    return f"relay:{school}:admin_log"


def request(school: str, request_id: str) -> str:
    return f"relay:{school}:request:{request_id}"


def timeline(school: str, request_id: str) -> str:
    return f"relay:{school}:timeline:{request_id}"


def guardian_requests(school: str, guardian_id: str) -> str:
    return f"relay:{school}:guardian:{guardian_id}:requests"


def open_emergency(school: str, guardian_id: str, student_id: str) -> str:
    """The latest P0 a guardian raised about a child: their further emergency messages join it while it is open."""
    return f"relay:{school}:guardian:{guardian_id}:emergency:{student_id}"


def corrections(school: str) -> str:
    """Staff's re-triage corrections, newest first (JSON): training data for the learned layer."""
    return f"relay:{school}:corrections"


def school_requests(school: str) -> str:
    """Every request of the school by creation time (score: epoch seconds): what reports read a week from."""
    return f"relay:{school}:requests"


def open_requests(school: str) -> str:
    """Open requests by due time (score: epoch seconds of the next due time)."""
    return f"relay:{school}:open"


def idempotency(school: str, guardian_id: str, key_digest: str) -> str:
    return f"relay:{school}:idem:{guardian_id}:{key_digest}"


def delivery(school: str, event_id: str) -> str:
    return f"relay:{school}:delivery:{event_id}"


def delivery_queued(school: str, event_id: str) -> str:
    """Set while a delivery's job waits in a queue: the watchdog does not queue it twice."""
    return f"relay:{school}:delivery:{event_id}:queued"


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


def ack_code(school: str, code: str) -> str:
    """The signed acknowledgement grant that a short link's code stands for (relay/base/links.py)."""
    return f"relay:{school}:ack-link:{code}"


def delivery_ack_code(school: str, event_id: str) -> str:
    """The code one notification's link carries: its retries send the same link."""
    return f"relay:{school}:delivery:{event_id}:ack-link"


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
    """A school's own canned replies (JSON), replacing the defaults in relay/core/canned_replies.yaml."""
    return f"relay:{school}:canned_replies"


# Trust (relay/school/bindings.py, relay/school/refresh_tokens.py, relay/core/audit.py) -----------------------------


def binding(school: str, openid_digest: str) -> str:
    """A WeChat user bound to a guardian (keyed by a digest: the openid itself is never stored)."""
    return f"relay:{school}:binding:{openid_digest}"


def guardian_bindings(school: str, guardian_id: str) -> str:
    """The openid digests bound to one guardian (so that their data can be deleted)."""
    return f"relay:{school}:guardian:{guardian_id}:bindings"


def guardian_openid(school: str, guardian_id: str) -> str:
    """The openid of the guardian's latest WeChat binding: what a subscribe message is addressed to.

    The one place an openid is kept in the clear (a message cannot be sent to a digest); it is never
    logged and is deleted with the guardian's data."""
    return f"relay:{school}:guardian:{guardian_id}:openid"


def binding_code(school: str, code_digest: str) -> str:
    """A one-time binding code the school handed to a guardian, not used yet."""
    return f"relay:{school}:binding-code:{code_digest}"


def refresh_token(school: str, token_digest: str) -> str:
    return f"relay:{school}:refresh:{token_digest}"


def refresh_token_used(school: str, token_digest: str) -> str:
    """A refresh token already rotated: presenting it again means it was stolen."""
    return f"relay:{school}:refresh-used:{token_digest}"


def guardian_refresh_tokens(school: str, guardian_id: str) -> str:
    return f"relay:{school}:guardian:{guardian_id}:refresh"


def audit(school: str) -> str:
    """Stream of staff actions {at, staff_id, action, request_id}: written by actions only, read by operators."""
    return f"relay:{school}:audit"


# Rate-limit counters are not school data (a client address has no school): `limits` keeps them
# under this prefix, each expiring with its window.
RATE_LIMITS_PREFIX = "relay:limits"


def replica_probe(school: str) -> str:
    """Written just before a WAIT that must cover writes made on other connections (relay/base/replicas.py)."""
    return f"relay:{school}:replica_probe"
