"""The real Relay the mini-program's jest tests talk to: Redis, `relay serve` (twice) and `relay worker`,
plus the local WeChat server (tests/vendors/wechat_server.py) so that /v1/auth/wechat runs for real.

Run by test/global-setup.js with the repository's venv. It prints one JSON line (the addresses and
which of other branches' additions this Relay has), then
serves a small control API on loopback until its stdin closes:

    POST /school      -> {"school_id", "tokens": {"principal", "aa", "nurse"}}   a fresh school per test file
    POST /login-code  {"code", "openid"}                                          what wx.login will hand out

Built from tests/support/spine.py, like the Python tests' stacks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import yaml  # noqa: E402
from support.spine import (  # noqa: E402
    Stack,
    WebhookReceiver,
    caller_token,
    free_port,
    lease_database,
    relay_env,
    school_document,
    wait_until,
)

from relay.base.directory import load_yaml, publish  # noqa: E402
from relay.cli import embedded  # noqa: E402
from tests.vendors.wechat_server import WeChatServer  # noqa: E402

SCHOOL_PHONE = "0429-5551234"


def redis_url(base: Path) -> tuple[str, Callable[[], None]]:
    """REDIS_URL or 6379 when reachable (a leased database of its own), else an embedded Redis."""
    for url in (os.environ.get("REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if url and embedded.reachable(url):
            lease = lease_database(url)
            if lease is not None:
                return lease
            break
    server = embedded.EmbeddedRedis(base / "redis").start()
    return server.url, server.stop


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="relay-mp-"))
    url, release = redis_url(base)
    receiver = WebhookReceiver()
    wechat = WeChatServer().__enter__()
    first_id = "t-" + uuid.uuid4().hex[:8]
    config = base / "school.yaml"
    config.write_text(yaml.safe_dump({"schools": [school_document(first_id, receiver.url)]}, allow_unicode=True))
    env = relay_env(url, config, f"http://127.0.0.1:{free_port()}") | {
        "RELAY_WECHAT_APP_ID": wechat.app_id,
        "RELAY_WECHAT_APP_SECRET": wechat.app_secret,
        "RELAY_WECHAT_TEMPLATE_ID": wechat.template_id,
        "RELAY_WECHAT_BASE_URL": wechat.base_url,
        # Every test binds from 127.0.0.1, and the counters outlive a run on a shared Redis (they are keyed
        # by address, not school): the limiter has its own tests (tests/test_trust_limits.py).
        "RELAY_RATE_LIMIT_BIND_IP": "100000/minute",
    }
    stack = Stack(url, env, base)
    stack.school_ids.append(first_id)
    try:
        stack.start_api()
        stack.ensure_workers(1)
        client = httpx.Client(timeout=10)

        def new_school() -> dict[str, Any]:
            school_id = "t-" + uuid.uuid4().hex[:8]
            document = school_document(school_id, receiver.url) | {"phone": SCHOOL_PHONE}
            path = base / f"{school_id}.yaml"
            path.write_text(yaml.safe_dump({"schools": [document]}, allow_unicode=True), encoding="utf-8")
            stack.school_ids.append(school_id)
            publish(stack.redis, load_yaml(path))
            tokens = {who: caller_token("staff", who, school_id) for who in ("principal", "aa", "nurse")}
            wait_until(lambda: client.get(f"{stack.url}/v1/queue", headers={
                "Authorization": f"Bearer {tokens['aa']}"}).status_code == 200, 10, "the API to know the school",
                interval=0.05)
            return {"school_id": school_id, "tokens": tokens, "phone": SCHOOL_PHONE}

        control = _control(new_school, wechat)
        print(json.dumps({"api": stack.url, "features": _features(client, stack.url, new_school()),
                          "control": f"http://127.0.0.1:{control.server_address[1]}", "logs": str(base)}), flush=True)
        sys.stdin.read()  # until the jest run closes our stdin (or dies)
        control.shutdown()
    finally:
        stack.close()
        wechat.__exit__()
        receiver.close()
        release()
        if not os.environ.get("RELAY_MP_KEEP_LOGS"):  # set it to read the API and worker logs afterwards
            shutil.rmtree(base, ignore_errors=True)


def _features(client: httpx.Client, api: str, school: dict[str, Any]) -> dict[str, bool]:
    """What this Relay offers beyond main's API (other branches add them): the tests skip, saying so, without."""
    parent = {"Authorization": "Bearer " + caller_token("parent", "g1", school["school_id"])}
    made = client.post(f"{api}/v1/requests", json={"student_id": "s1", "text": "孩子摔倒了头在流血"},
                       headers=parent | {"Idempotency-Key": uuid.uuid4().hex}).json()
    follow_up = client.post(f"{api}/v1/requests/{made['id']}/follow-up", json={"text": "已经止血了"},
                            headers=parent | {"Idempotency-Key": uuid.uuid4().hex})
    return {"school_phone": "school_phone" in made, "follow_up": follow_up.status_code not in (404, 405)}


def _control(new_school: Callable[[], dict[str, Any]], wechat: WeChatServer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path == "/school":
                answer: dict[str, Any] = new_school()
            elif self.path == "/login-code":
                wechat.add_login_code(body["code"], body["openid"])
                answer = {"ok": True}
            else:
                self.send_error(404)
                return
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


if __name__ == "__main__":
    main()
