"""`make bench`: intake latency and throughput, and POST → first P0 webhook, beside a bare FastAPI baseline.

Runs the real system on this machine: a private Redis, `relay serve --workers BENCH_API` (2), BENCH_WORKERS
(2) `relay worker`, and a local webhook receiver standing in for the staff. Each paced P0 comes from another
guardian about another child (one guardian's further emergencies would join their open one). Prints
numbers beside the aims of issue #19, with the load average (the machine may be shared); asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from relay.base import tokens  # noqa: E402
from relay.cli.embedded import EmbeddedRedis, free_port  # noqa: E402

# Its receivers listen on 127.0.0.1: contact URLs may reach loopback here (relay/base/outbound.py), in this
# process (which publishes the directory) and in the ones it starts.
ALLOW_LOOPBACK = {"RELAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}
os.environ.update(ALLOW_LOOPBACK)

BIN = Path(sys.executable).parent
SECRET = "bench-secret-key"
P0_TEXT = "孩子在学校发烧了，39度"
P2_TEXT = "请问这周的数学作业是第几页？"


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.first_seen: dict[str, float] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        request_id = json.loads(body)["request"]["id"]
        server: Receiver = self.server  # type: ignore[assignment]
        with server.lock:
            server.first_seen.setdefault(request_id, arrived)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


# Issue #19's aims for this benchmark.
AIM_ADDS_P50_MS, AIM_ADDS_P99_MS = 2.0, 6.0
AIM_WEBHOOK_P50_MS, AIM_WEBHOOK_P99_MS = 5.0, 15.0
AIM_SUSTAINED_PER_S = 1200


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def school_yaml(receiver_url: str, students: int = 50) -> str:
    students_yaml = "\n".join(
        f"      - {{id: s-{i}, name: 学生{i}, class_id: c1, guardians: [{{id: g-{i}, name: 家长{i}}}]}}"
        for i in range(1, students + 1)
    )
    return f"""schools:
  - id: bench-01
    name: 基准小学
    staff:
      - {{id: t-aa, name: 教务老师, roles: [academic_affairs], contacts: [{{channel: webhook, url: "{receiver_url}/t-aa"}}]}}
      - {{id: t-nurse, name: 校医, roles: [nurse], contacts: [{{channel: webhook, url: "{receiver_url}/t-nurse"}}]}}
    classes:
      - {{id: c1, name: 一年级1班, academic_affairs: t-aa}}
    students:
{students_yaml}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"n={len(ms)} p50={statistics.median(ms):.2f} ms p99={percentile(ms, 99):.2f} ms "
            f"max={max(ms):.2f} ms")


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def paced(client: httpx.Client, url: str, headers, make_body, rate: float, seconds: float):
    """Send at a steady rate; `headers` is a dict or a function of the request's number.
    Returns [(sent_at, latency, response)]."""
    results = []
    interval = 1.0 / rate
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.time()
        t0 = time.perf_counter()
        base = headers(i) if callable(headers) else headers
        response = client.post(url, headers=dict(base, **{"Idempotency-Key": f"k-{i}-{sent}"}), json=make_body(i))
        results.append((sent, time.perf_counter() - t0, response))
    return results


async def flood(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(worker: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                t0 = time.perf_counter()
                r = await client.post(url, headers=dict(headers, **{"Idempotency-Key": f"f-{worker}-{i}"}),
                                      json={"student_id": "s-1", "text": P2_TEXT})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    errors += 1
                    if errors == 1:
                        print("first non-201:", r.status_code, r.text[:200])
        await asyncio.gather(*(one(w) for w in range(concurrency)))
    return len(latencies), latencies, errors


def wrk(url: str, headers: dict[str, str], seconds: float, connections: int) -> tuple[str, float]:
    body = json.dumps({"student_id": "s-1", "text": P2_TEXT})  # ASCII with \u escapes: Lua keeps it verbatim
    script = Path(__file__).with_name("post.lua")
    args = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script),
            "-H", "Content-Type: application/json", "-H", f"Authorization: {headers['Authorization']}", url]
    # wrk reads the body from the script's wrk.body; pass it through the environment-free way: a tiny wrapper.
    wrapper = Path(tempfile.mkstemp(suffix=".lua")[1])
    wrapper.write_text(f"wrk.method = \"POST\"\nwrk.body = [[{body}]]\n" + script.read_text(), encoding="utf-8")
    args[args.index(str(script))] = str(wrapper)
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30).stdout
    line = next((row for row in out.splitlines() if row.startswith("RESULT")), None)
    if line is None:
        return "wrk gave no result:\n" + out, 0.0
    _, requests, errors, p50, p99, worst = line.split()
    return (f"{int(requests) / seconds:.0f} requests/s, {errors} errors or non-2xx; "
            f"latency p50={float(p50):.2f} ms p99={float(p99):.2f} ms max={float(worst):.2f} ms (wrk)",
            int(requests) / seconds)


def main() -> None:
    rate = float(os.environ.get("BENCH_RATE", 50))
    seconds = float(os.environ.get("BENCH_SECONDS", 20))
    print(f"# Relay intake benchmark — {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} "
          f"({os.cpu_count()} cores, Python {platform.python_version()})")
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    redis = EmbeddedRedis(work / "redis").start()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    config = work / "school.yaml"
    paced_count = int(rate * seconds) + int(rate * min(seconds, 10)) + 100
    config.write_text(school_yaml(receiver.url, students=paced_count + 50), encoding="utf-8")
    api_port, bare_port = free_port(), free_port()
    env = dict(os.environ, REDIS_URL=redis.url, RELAY_CONFIG=str(config), RELAY_SECRET_KEY=SECRET,
               RELAY_WEBHOOK_SECRET="bench-webhook", RELAY_LOG_LEVEL="warning",
               RELAY_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
               # The benchmark is one guardian at one address flooding on purpose: measure intake, not the limiter.
               RELAY_RATE_LIMIT_GUARDIAN="1000000/minute", RELAY_RATE_LIMIT_IP="1000000/minute")
    workers = int(os.environ.get("BENCH_WORKERS", 2))  # as `relay dev` runs
    api_processes = int(os.environ.get("BENCH_API", 2))
    print(f"(API: `relay serve --workers {api_processes}`; {workers} `relay worker` process(es); bare endpoint: one "
          f"uvicorn process; embedded Redis with AOF everysec; {load()} at the start)")
    procs = [
        subprocess.Popen([str(BIN / "relay"), "serve", "--host", "127.0.0.1", "--port", str(api_port),
                          "--workers", str(api_processes)], env=env),
        subprocess.Popen([str(BIN / "relay"), "worker"], env=env),
        subprocess.Popen([str(BIN / "uvicorn"), "tests.bench.bare_app:app", "--port", str(bare_port),
                          "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT),
    ] + [subprocess.Popen([str(BIN / "relay"), "worker"], env=env) for _ in range(workers - 1)]
    try:
        wait_ready(f"http://127.0.0.1:{api_port}/readyz")
        wait_ready(f"http://127.0.0.1:{bare_port}/docs")
        token = tokens.caller_token("parent", "g-1", "bench-01", [SECRET], 3600)
        headers = {"Authorization": f"Bearer {token}"}
        # Each paced P0 from its own guardian about their own child (g-51 on): none joins an open emergency.
        others = [{"Authorization": "Bearer " + tokens.caller_token("parent", f"g-{n}", "bench-01", [SECRET], 3600)}
                  for n in range(51, 51 + paced_count)]
        next_other = iter(range(len(others)))
        numbered: dict[int, int] = {}

        def p0_sender(i: int) -> dict[str, str]:
            numbered[i] = next(next_other)
            return others[numbered[i]]

        def p0_body(i: int) -> dict[str, str]:
            return {"student_id": f"s-{51 + numbered[i]}", "text": P0_TEXT}
        relay_url = f"http://127.0.0.1:{api_port}/v1/requests"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/requests"
        with httpx.Client(timeout=10) as client:
            for url in (relay_url, bare_url):  # warm up both
                paced(client, url, headers, lambda i: {"student_id": "s-1", "text": P2_TEXT}, 100, 1)
            bare = paced(client, bare_url, headers, lambda i: {"student_id": "s-1", "text": P0_TEXT}, rate, seconds)
            relay = paced(client, relay_url, p0_sender, p0_body, rate, seconds)
        print(f"\n## Intake latency at a steady {rate:.0f} requests/s for {seconds:.0f} s (P0 messages) — {load()}")
        print(f"bare FastAPI endpoint (parse, 201): {summary([lat for _, lat, _ in bare])}")
        print(f"relay POST /v1/requests:            {summary([lat for _, lat, _ in relay])}")
        bare_p50 = statistics.median([lat for _, lat, _ in bare])
        relay_p50 = statistics.median([lat for _, lat, _ in relay])
        adds_p50 = 1000 * (relay_p50 - bare_p50)
        adds_p99 = 1000 * (percentile([x[1] for x in relay], 99) - percentile([x[1] for x in bare], 99))
        print(f"relay adds {adds_p50:.2f} ms at p50 (aim <= {AIM_ADDS_P50_MS:g} ms: {verdict(adds_p50 <= AIM_ADDS_P50_MS)}), "
              f"{adds_p99:.2f} ms at p99 (aim <= {AIM_ADDS_P99_MS:g} ms: {verdict(adds_p99 <= AIM_ADDS_P99_MS)})")
        statuses = sorted({r.status_code for _, _, r in relay})
        print(f"relay answers: {statuses}; joined to an open emergency: "
              f"{sum(1 for _, _, r in relay if 'relay-joined-request' in r.headers)}")
        created = [(sent, r.json()["id"]) for sent, _, r in relay if r.status_code == 201]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(receiver.first_seen) < len(created):
            time.sleep(0.1)
        delays = [receiver.first_seen[i] - sent for sent, i in created if i in receiver.first_seen]
        print(f"\n## POST → first P0 webhook delivery ({len(delays)}/{len(created)} delivered), SimpleWorker — {load()}")
        print(f"POST to first webhook: {summary(delays)}")
        if delays:
            p50, p99 = 1000 * statistics.median(delays), 1000 * percentile(delays, 99)
            print(f"aims: p50 <= {AIM_WEBHOOK_P50_MS:g} ms: {verdict(p50 <= AIM_WEBHOOK_P50_MS)}; "
                  f"p99 <= {AIM_WEBHOOK_P99_MS:g} ms: {verdict(p99 <= AIM_WEBHOOK_P99_MS)}")

        if os.environ.get("BENCH_FORK", "1") == "1":
            # The same with RQ's default forking worker, for the record of why we do not use it.
            procs[1].terminate()
            procs[1].wait(timeout=10)
            procs[1] = subprocess.Popen([str(BIN / "relay"), "worker"], env=dict(env, RELAY_WORKER_CLASS="fork"))
            time.sleep(1.0)
            receiver.first_seen.clear()
            fork_seconds = min(seconds, 10)
            with httpx.Client(timeout=10) as client:
                forked = paced(client, relay_url, p0_sender, p0_body, rate, fork_seconds)
            created_f = [(sent, r.json()["id"]) for sent, _, r in forked if r.status_code == 201]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(receiver.first_seen) < len(created_f):
                time.sleep(0.1)
            delays_f = [receiver.first_seen[i] - sent for sent, i in created_f if i in receiver.first_seen]
            print(f"POST to first webhook, RQ's forking Worker ({fork_seconds:.0f} s): {summary(delays_f)} "
                  f"({len(delays_f)}/{len(created_f)} delivered within 60 s)")
            procs[1].terminate()
            procs[1].wait(timeout=10)
            procs[1] = subprocess.Popen([str(BIN / "relay"), "worker"], env=env)

        flood_seconds = float(os.environ.get("BENCH_FLOOD_SECONDS", 10))
        for name, url in (("bare (1 process)", bare_url), (f"relay ({api_processes} API processes)", relay_url)):
            print(f"\n## Sustained intake, {name}: 32 concurrent connections for {flood_seconds:.0f} s, "
                  f"{workers} workers running — {load()}")
            if shutil.which("wrk"):
                line, per_second = wrk(url, headers, flood_seconds, 32)
                print(line)
            else:
                count, latencies, errors = asyncio.run(flood(url, headers, flood_seconds, 32))
                per_second = count / flood_seconds
                print("(python load generator: install wrk for a generator that is not the bottleneck)")
                print(f"{per_second:.0f} requests/s, {errors} non-201; latency {summary(latencies)}")
            if url == relay_url:
                print(f"aim >= {AIM_SUSTAINED_PER_S} requests/s with workers running: "
                      f"{verdict(per_second >= AIM_SUSTAINED_PER_S)} (after: {load()})")
        stored = int(httpx.get(f"http://127.0.0.1:{api_port}/readyz").status_code == 200)
        print(f"\nAPI still ready after the flood: {bool(stored)}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        redis.stop()
        receiver.shutdown()


if __name__ == "__main__":
    main()
