"""A local OpenAI-compatible chat-completions server (what a school's own model server speaks).

    with ChatServer(key="sk-test") as llm:
        llm.answer({"urgency": "P0", "reason": "..."})   # the next answers, in order; then "P3"
        ...
        assert "张小明" not in llm.prompts[0]

Endpoint: POST /chat/completions with a Bearer key. Answers the documented shapes:
200 {"choices": [{"message": {"role": "assistant", "content": ...}, "finish_reason": "stop"}]};
401 / 429 / 500 with {"error": {"message", "type", "code"}}. Scripted faults: "slow" (held until
the client gives up), "refusal" (message.refusal set), "filtered" (finish_reason content_filter),
"not_json" (content that is prose), "broken" (a body that is not JSON), "http_429", "http_500".
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from .local import LocalServer


class ChatServer(LocalServer):
    def __init__(self, key: str = "sk-local-test", model: str = "school-triage-1") -> None:
        self.key, self.model = key, model
        self.prompts: list[str] = []  # the user messages received
        self.bodies: list[dict[str, Any]] = []
        self._script: list[Any] = []
        self._lock = threading.Lock()
        self._serve(_handler(self))

    def answer(self, *answers: Any) -> None:
        """Verdict dicts (sent as the content's JSON) or fault names, used in order."""
        with self._lock:
            self._script.extend(answers)

    def next_answer(self) -> Any:
        with self._lock:
            return self._script.pop(0) if self._script else {"urgency": "P3", "reason": "无需处理"}


def _completion(content: str | None, finish: str = "stop", refusal: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal:
        message["refusal"] = refusal
    return {"id": "chatcmpl-local", "object": "chat.completion", "created": 0, "model": "school-triage-1",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _error(status: int, kind: str, code: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": kind, "type": kind, "param": None, "code": code}}


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.rstrip("/") != "/chat/completions":
                return self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
            if self.headers.get("Authorization") != f"Bearer {server.key}":
                status, body = _error(401, "invalid_request_error", "invalid_api_key")
                return self._send(status, json.dumps(body).encode())
            document = json.loads(raw)
            with server._lock:
                server.bodies.append(document)
                server.prompts.append(next(m["content"] for m in document["messages"] if m["role"] == "user"))
            answer = server.next_answer()
            if answer == "slow":
                server._closing.wait(30)
                return
            if answer == "broken":
                return self._send(200, b"<html>502 Bad Gateway</html>")
            if isinstance(answer, str) and answer.startswith("http_"):
                status = int(answer.removeprefix("http_"))
                kind = "rate_limit_exceeded" if status == 429 else "server_error"
                return self._send(*(lambda s, b: (s, json.dumps(b).encode()))(*_error(status, kind, kind)))
            if answer == "refusal":
                body = _completion(None, refusal="I can't help with that.")
            elif answer == "filtered":
                body = _completion("", finish="content_filter")
            elif answer == "not_json":
                body = _completion("这条消息看起来比较紧急，建议尽快处理。")
            else:
                body = _completion("```json\n" + json.dumps(answer, ensure_ascii=False) + "\n```")
            self._send(200, json.dumps(body, ensure_ascii=False).encode())

    return Handler
