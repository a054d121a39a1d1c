"""The privacy notice parents agree to when they bind their WeChat account: its version and address.

Binding records the guardian's consent against `NOTICE_VERSION`; a new version of the notice
(a new purpose, a new recipient, a longer retention) means a new version string, and parents
binding after that agree to the new text. The page itself is relay/pages/acknowledge/privacy.py.
"""

NOTICE_VERSION = "2026-05-01"
NOTICE_PATH = "/privacy"


def notice(public_url: str) -> dict[str, str]:
    """What the mini-program shows before asking for consent."""
    return {"version": NOTICE_VERSION, "url": public_url.rstrip("/") + NOTICE_PATH}
