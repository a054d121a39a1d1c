"""Tell the pages that a request changed: one small message on the school's pub/sub channel.

Best effort by design: the change is already committed when this runs, and a page that
missed a message catches up on its next refresh, so a failed publish never fails the caller.
"""

from __future__ import annotations

import json
import time
from typing import Any

from relay.base import keys
from relay.base.log import log


def message(request_id: str, status: str) -> str:
    """What the pages receive on the school's channel (intake publishes it from inside its write)."""
    return json.dumps({"id": request_id, "status": status, "at": round(time.time(), 3)})


def publish(connection: Any, school: str, request_id: str, status: str) -> None:
    try:
        connection.publish(keys.events(school), message(request_id, status))
    except Exception as exc:  # any failure here must stay here
        log.warning("change_not_published", school_id=school, request_id=request_id, error=type(exc).__name__)
