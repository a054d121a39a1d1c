"""`make bench-memory`: Redis memory per stored request, requests per GB, and the retention that keeps a
1,500-student school under 1 GB for a year.

Runs the real app (in this process, over a real socket-less TestClient) against a private Redis, with a
1,500-student school published, and takes each request through its whole life as staff do: submitted by
a parent (texts of tests/data/triage_dev.jsonl, the urgency mix of the week replay), acknowledged, answered
and resolved; then `relay worker --burst` delivers its notifications to a local receiver. It measures
  - MEMORY USAGE (SAMPLES 0) over every key one request owns (record, timeline, delivery records and marks,
    idempotency key), split into what stays for the retention period and what expires by itself;
  - INFO used_memory before and after BENCH_REQUESTS (10,000) requests, RQ's leftovers removed (its job
    hashes are deleted as jobs finish: not stored data), which adds the request's share of the indexes
    (open queue, school list, guardian index) and of the audit stream.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RELAY_WEBHOOK_ALLOW_PRIVATE", "127.0.0.0/8")  # the receiver is on 127.0.0.1

from fastapi.testclient import TestClient  # noqa: E402

from relay.app.factory import create_app  # noqa: E402
from relay.base import keys, tokens  # noqa: E402
from relay.base.directory import load_yaml, publish  # noqa: E402
from relay.base.runtime import Runtime  # noqa: E402
from relay.base.settings import Settings  # noqa: E402
from relay.cli.embedded import EmbeddedRedis  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "10000"))
SAMPLE = 200  # requests whose keys are weighed one by one
STUDENTS, CLASSES = 1500, 36
SECRET = "bench-secret-" + uuid.uuid4().hex
SCHOOL = "hld-bench-01"
# The week replay (docs/replay/summary.json): 713 messages from 1,200 students in a school week, of
# which P0 5, P1 345, P2 284, P3 79. A year counted as 52 such weeks (holidays included: an upper bound).
REPLAY_MESSAGES, REPLAY_STUDENTS = 713, 1200
MIX = {"P0": 5, "P1": 345, "P2": 284, "P3": 79}
GIB = 1 << 30


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Ok)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def school_document(receiver_url: str) -> dict[str, Any]:
    def member(staff_id: str, name: str, roles: list[str]) -> dict[str, Any]:
        return {"id": staff_id, "name": name, "roles": roles,
                "contacts": [{"channel": "webhook", "url": f"{receiver_url}/{staff_id}"}]}

    staff = [member("t-aa1", "教务一", ["academic_affairs"]), member("t-aa2", "教务二", ["academic_affairs"]),
             member("t-aa3", "教务三", ["academic_affairs"]), member("t-nurse", "校医", ["nurse"]),
             member("t-safety", "安全员", ["safety_officer"]), member("t-duty", "值班领导", ["duty_leader"]),
             member("t-principal", "校长", ["principal"])]
    staff += [member(f"t-hr{c}", f"班主任{c}", ["homeroom"]) for c in range(1, CLASSES + 1)]
    return {
        "id": SCHOOL, "name": "兴城市内存测试小学", "timezone": "Asia/Shanghai",
        "hours": {d: "00:00-23:59" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "staff": staff,
        "classes": [{"id": f"c{c}", "name": f"{c}班", "academic_affairs": f"t-aa{(c - 1) % 3 + 1}",
                     "homeroom": f"t-hr{c}"} for c in range(1, CLASSES + 1)],
        "students": [{"id": f"s{i}", "name": f"学生{i}", "class_id": f"c{(i - 1) % CLASSES + 1}",
                      "guardians": [{"id": f"g{i}", "name": f"家长{i}", "phone": f"+86138{i:08d}"}]}
                     for i in range(1, STUDENTS + 1)],
    }


def texts_by_urgency() -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {u: [] for u in MIX}
    for line in (ROOT / "tests" / "data" / "triage_dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pools[row["urgency"]].append(row["text"])
    return pools


def bearer(kind: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.caller_token(kind, subject, SCHOOL, [SECRET], 86400)}"}


def one_life(client: TestClient, rng: random.Random, pools: dict[str, list[str]], n: int) -> str | None:
    """Submit, acknowledge, answer and resolve one request, as the school does; its id (None if refused)."""
    urgency = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    student = rng.randint(1, STUDENTS)
    headers = bearer("parent", f"g{student}") | {"Idempotency-Key": f"bench-{n}"}
    made = client.post("/v1/requests", json={"student_id": f"s{student}", "text": rng.choice(pools[urgency])},
                       headers=headers)
    if made.status_code != 201:
        return None
    record = made.json()
    if made.headers.get("Relay-Joined-Request"):
        return None  # joined to an open emergency: not a request of its own
    staff = bearer("staff", record["owner"])
    request_id = str(record["id"])
    client.post(f"/v1/requests/{request_id}/ack", headers=staff)
    client.post(f"/v1/requests/{request_id}/reply", json={"text": "收到，已登记，谢谢家长。"}, headers=staff)
    client.post(f"/v1/requests/{request_id}/resolve", json={"note": "已处理"}, headers=staff)
    return request_id


def owned_keys(r: redis.Redis, request_id: str) -> list[str]:
    found = [keys.request(SCHOOL, request_id), keys.timeline(SCHOOL, request_id)]
    found += [k.decode() for k in r.scan_iter(match=keys.delivery(SCHOOL, request_id + ".*"), count=10000)]
    return [k for k in found if r.exists(k)]


def weigh(r: redis.Redis, request_id: str) -> tuple[int, int]:
    """(bytes kept for the retention period, bytes that expire by themselves) of one request's own keys."""
    kept = expiring = 0
    for key in owned_keys(r, request_id):
        size = int(r.memory_usage(key, samples=0) or 0)
        if r.ttl(key) > 0:
            expiring += size
        else:
            kept += size
    return kept, expiring


def used_memory(r: redis.Redis) -> int:
    r.execute_command("MEMORY", "PURGE")  # jemalloc's dirty pages returned first: a steadier reading
    return int(r.info("memory")["used_memory"])


def drain(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "relay"), "worker", "--burst", "--no-scheduler"],
                   env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="relay-memory-") as tmp:
        base = Path(tmp)
        server = EmbeddedRedis(base / "redis").start()
        try:
            run(server, receiver, base)
        finally:
            server.stop()
            receiver.shutdown()


def run(server: EmbeddedRedis, receiver: Receiver, base: Path) -> None:  # noqa: PLR0915 - one straight script
    config = base / "school.yaml"
    config.write_text(yaml.safe_dump({"schools": [school_document(receiver.url)]}, allow_unicode=True),
                      encoding="utf-8")
    limits = "1000000/minute"
    settings = Settings(redis_url=server.url, secret_key=SECRET, queue_prefix="relaymem",
                        rate_limit_guardian=limits, rate_limit_ip=limits, rate_limit_urgent=limits,
                        log_level="error", intake_max_in_flight=0)
    runtime = Runtime(settings)
    r = runtime.redis
    empty = used_memory(r)
    publish(r, load_yaml(config))
    runtime.directories.reload()
    with_directory = used_memory(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(REDIS_URL=server.url, RELAY_SECRET_KEY=SECRET, RELAY_QUEUE_PREFIX="relaymem",
               RELAY_LOG_LEVEL="error", RELAY_WEBHOOK_ALLOW_PRIVATE="127.0.0.0/8",
               RELAY_RETRY_MAX_ATTEMPTS="1")

    rng = random.Random(16)
    pools = texts_by_urgency()
    ids: list[str] = []
    started = time.perf_counter()
    with TestClient(create_app(runtime)) as client:
        for n in range(REQUESTS):
            made = one_life(client, rng, pools, n)
            if made:
                ids.append(made)
    submitted_s = time.perf_counter() - started
    drained_s = drain(env)
    for key in r.scan_iter(match="rq:*", count=10000):  # RQ's registries of finished work: not stored data
        r.delete(key)
    after = used_memory(r)

    weighed = [weigh(r, i) for i in rng.sample(ids, min(SAMPLE, len(ids)))]
    kept = [k for k, _ in weighed]
    expiring = [e for _, e in weighed]
    per_request = (after - with_directory) / max(len(ids), 1)
    per_request_kept = per_request - statistics.mean(expiring)  # after 30 days the delivery records are gone
    per_gib = GIB / per_request
    per_student_week = REPLAY_MESSAGES / REPLAY_STUDENTS
    per_year = per_student_week * STUDENTS * 52
    directory_bytes = with_directory - empty
    year_bytes = per_year * per_request_kept + directory_bytes
    days_under_gib = (GIB - directory_bytes) / (per_year / 365 * per_request_kept)

    print(f"Redis memory per stored request — {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, Redis {r.info('server')['redis_version']}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"  {len(ids):,} requests of a {STUDENTS:,}-student school, mix {MIX} (week replay), each "
          f"acknowledged, answered and resolved; notifications delivered by `relay worker --burst` "
          f"({submitted_s:.0f} s through the API, {drained_s:.0f} s to deliver)")
    print(f"  one request's own keys (MEMORY USAGE, {len(weighed)} sampled): kept until retention median "
          f"{statistics.median(kept):,.0f} B (max {max(kept):,} B); expiring by themselves (delivery records, "
          f"30 d) median {statistics.median(expiring):,.0f} B")
    print(f"  INFO used_memory: empty {empty / 1e6:.1f} MB, with the directory {with_directory / 1e6:.1f} MB "
          f"(+{directory_bytes / 1e6:.1f} MB), after {len(ids):,} requests {after / 1e6:.1f} MB")
    print(f"  bytes per request (INFO delta / requests, indexes and audit included): {per_request:,.0f} B "
          f"while its delivery records live, {per_request_kept:,.0f} B after")
    print(f"  requests per GiB: {per_gib:,.0f} (fresh), {GIB / per_request_kept:,.0f} (past 30 days)")
    print(f"  a {STUDENTS:,}-student school: {per_student_week:.2f} requests per student per week (replay) x 52 "
          f"weeks = {per_year:,.0f} requests a year -> {year_bytes / 1e6:,.0f} MB for a whole year kept")
    print(f"  retention that keeps it under 1 GiB: up to {days_under_gib:,.0f} days of closed requests "
          f"(the default 180 days uses {(directory_bytes + per_year / 365 * 180 * per_request_kept) / 1e6:,.0f} MB)")


if __name__ == "__main__":
    main()
