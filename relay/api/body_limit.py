"""Request bodies are counted as they arrive: one over its route's limit gets 413 before it is read in full.

A route that reads its body (`request.body()`, a form, a pydantic body) would otherwise hold all of it
in memory before any check could look at its length: one unauthenticated 200 MiB POST took the API
from 150 MB to 540 MB. This middleware refuses a declared Content-Length over the limit without reading
a byte, and counts the bytes of a chunked body as they are received, stopping at the limit. Either
way the answer closes the connection, so the rest of the body is never read.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A roster workbook or CSV files, or a whole school as JSON: a 1,200-student workbook is ~95 KB.
UPLOAD_BYTES = 10 * 1024 * 1024
# A school's settings (hours, terms, closures, SLA) as JSON or as the settings page's YAML.
SETTINGS_BYTES = 256 * 1024
# A page's form: a staff reply of 2,000 Chinese characters is about 18 KB url-encoded.
FORM_BYTES = 64 * 1024

# The routes that take more than the default, by method and exact path.
LARGER: dict[tuple[str, str], int] = {
    ("POST", "/v1/admin/roster/check"): UPLOAD_BYTES,
    ("POST", "/admin/roster/check"): UPLOAD_BYTES,
    ("PUT", "/v1/admin/directory"): UPLOAD_BYTES,
    ("PUT", "/v1/admin/settings"): SETTINGS_BYTES,
    ("POST", "/admin/settings"): 4 * SETTINGS_BYTES,  # the same settings as a url-encoded form
}
CODE = "body_too_large"


def limit_for(method: str, path: str, api_bytes: int) -> int:
    """The most bytes a request to this route may send: /v1 JSON bodies get RELAY_MAX_BODY_BYTES."""
    return LARGER.get((method, path)) or (api_bytes if path.startswith("/v1/") else FORM_BYTES)


def too_large_message(limit: int) -> str:
    return f"内容过大 (the body is over {limit} bytes)"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes its limit; the app's 413 handler answers it.

    An HTTPException, so that FastAPI's body parsing passes it on instead of turning it into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit), headers={"Connection": "close"})


class BodyLimit:
    def __init__(self, app: ASGIApp, api_bytes: int) -> None:
        self.app = app
        self.api_bytes = api_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"], self.api_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # the app had answered already (it streamed while reading): nothing more to say
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": CODE, "message": too_large_message(limit)}}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
