"""The staff's phones in the replay: a local webhook receiver that records every notification.

Every contact of every staff member is rewritten to `<receiver>/<school>/<staff>/<channel>`,
so a notification's path says who would have been buzzed and on which channel (an SMS
fallback arrives on `/sms`). Each POST is checked against the webhook signature and kept
with its real arrival time (for the emergency latency) and its simulated time (`sent_at`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    event_id: str
    event: str
    urgency: str
    staff_id: str
    channel: str
    request_id: str
    request_ids: tuple[str, ...]  # a digest names every request it carries
    sent_at: str  # simulated time, ISO (as Relay stamped it)
    arrived: float  # real time.time() on arrival


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.notifications: list[Notification] = []
        self.duplicates = 0
        self.bad_signatures = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._take(self.path, body, self.headers.get("X-Relay-Signature", ""), time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, path: str, body: bytes, signature: str, arrived: float) -> None:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        parts = path.strip("/").split("/")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        with self._lock:
            if not hmac.compare_digest(expected, signature) or not isinstance(document, dict) or len(parts) < 3:
                self.bad_signatures += 1
                return
            event_id = str(document.get("event_id"))
            if event_id in self._seen:  # a receiver may see an event twice, never not at all
                self.duplicates += 1
                return
            self._seen.add(event_id)
            request = document.get("request") or {}
            self.notifications.append(Notification(
                event_id=event_id, event=str(document.get("event")), urgency=str(request.get("urgency")),
                staff_id=parts[1], channel=parts[2], request_id=str(request.get("id")),
                request_ids=tuple(str(i) for i in request.get("digest_request_ids") or (request.get("id"),)),
                sent_at=str(document.get("sent_at")), arrived=arrived,
            ))

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)


def webhook_contacts(document: dict[str, Any], receiver_url: str, school_ids: set[str] | None = None) -> dict[str, Any]:
    """The configuration with each staff contact replaced by a webhook to the receiver, channel by channel."""
    for school in document.get("schools", []):
        if school_ids is not None and school.get("id") not in school_ids:
            continue
        for member in school.get("staff", []):
            channels = [c.get("channel", "webhook") for c in member.get("contacts") or []] or ["webhook"]
            member["contacts"] = [
                {"channel": "webhook", "url": f"{receiver_url}/{school['id']}/{member['id']}/{channel}"}
                for channel in channels
            ]
    return document
