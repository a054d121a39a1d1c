"""The API's peak memory while it refuses oversized bodies and a workbook bomb.

Starts one `relay serve` (the example school under a throw-away id, on the Redis at REDIS_URL, default
127.0.0.1:6379 database 15, or an embedded one when none answers), sends it, one after another:
a chunked 200 MiB body to the unauthenticated `POST /v1/auth/wechat`, a 200 MiB body with its
Content-Length declared to `POST /v1/requests`, a chunked 200 MiB multipart upload to the roster
check (as the principal), and a 412 KB workbook that unpacks to 400 MiB, and one that unpacks to just under the limit. After each it prints the
answer and the API's peak resident memory (VmHWM in /proc/PID/status). Prints numbers; asserts nothing.
The aim: a peak under 250 MB.

    .venv/bin/python tests/bench/body_bench.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import redis  # noqa: E402
from support.admin import bomb_workbook  # noqa: E402
from support.spine import SECRET_KEY, free_port, relay_env, start_api, stop  # noqa: E402

from relay.base import tokens  # noqa: E402
from relay.base.directory import export_yaml, load_yaml  # noqa: E402
from relay.cli import embedded  # noqa: E402

MIB = 1024 * 1024


def memory(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1000
    raise LookupError(field)


def chunks(size: int, head: bytes = b"") -> Iterator[bytes]:
    chunk, sent = b"a" * (64 * 1024), 0
    if head:
        yield head
    while sent < size:
        sent += len(chunk)
        yield chunk


def main() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    server = None
    if not embedded.reachable(url):
        server = embedded.EmbeddedRedis(Path(tempfile.mkdtemp())).start()
        url = server.url
    school = load_yaml(ROOT / "deploy/examples/school.yaml").schools[0]
    school = school.model_copy(update={"id": "bench-" + uuid.uuid4().hex[:8]})
    work = Path(tempfile.mkdtemp())
    config = work / "school.yaml"
    config.write_text(export_yaml([school]), encoding="utf-8")
    env = relay_env(url, config, f"http://127.0.0.1:{free_port()}")
    env["RELAY_QUEUE_PREFIX"] = "bench-body"
    api, base = start_api(env, work)
    principal = {"Authorization": "Bearer " + tokens.caller_token("staff", "t-ma-principal", school.id, [SECRET_KEY],
                                                                  3600)}
    try:
        print(f"relay serve ready: {memory(api.pid, 'VmRSS'):.0f} MB resident")
        boundary = "benchboundary"
        upload_head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.xlsx\"\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n").encode()
        cases: list[tuple[str, str, dict[str, str], object]] = [
            ("chunked 200 MiB, POST /v1/auth/wechat (no token)", "/v1/auth/wechat",
             {"Content-Type": "application/json"}, chunks(200 * MIB, b'{"code": "')),
            ("declared 200 MiB, POST /v1/requests", "/v1/requests",
             {"Content-Type": "application/json", "Content-Length": str(200 * MIB)}, chunks(200 * MIB)),
            ("chunked 200 MiB upload, POST /v1/admin/roster/check", "/v1/admin/roster/check",
             {**principal, "Content-Type": f"multipart/form-data; boundary={boundary}"},
             chunks(200 * MIB, upload_head)),
        ]
        bomb = bomb_workbook(400 * MIB)
        for label, path, headers, content in cases:
            with httpx.Client(base_url=base, timeout=120) as client:
                answer = client.post(path, content=content, headers=headers)  # type: ignore[arg-type]
            print(f"{label:58s} → {answer.status_code} {answer.json()['error']['code']:16s} "
                  f"peak {memory(api.pid, 'VmHWM'):.0f} MB")
        # The bomb, and one just under the unpacked limit (read by openpyxl; its one cell refused as too long).
        for label, workbook in ((f"workbook bomb ({len(bomb) // 1024} KB → 400 MiB), roster check", bomb),
                                ("workbook of 23 MiB unpacked (under the limit), roster check", bomb_workbook(23 * MIB))):
            with httpx.Client(base_url=base, timeout=120) as client:
                answer = client.post("/v1/admin/roster/check", files={"file": ("roster.xlsx", workbook)},
                                     headers=principal)
            print(f"{label:58s} → {answer.status_code} {answer.json()['error']['code']:16s} "
                  f"peak {memory(api.pid, 'VmHWM'):.0f} MB")
        alive = api.poll() is None and httpx.get(f"{base}/readyz").status_code == 200
        print(f"API alive afterwards: {alive}; peak resident memory {memory(api.pid, 'VmHWM'):.0f} MB (aim: < 250 MB)")
        return 0
    finally:
        stop(api)
        connection = redis.Redis.from_url(url)
        connection.srem("relay:schools", school.id)
        for key in list(connection.scan_iter(match=f"relay:{school.id}:*", count=500)):
            connection.delete(key)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
