"""How long a 1,200-student roster import takes: read the workbook, check it, stage it, apply it.

Uses the example school (deploy/examples/school.yaml) under a throw-away school id on the Redis at
REDIS_URL (default 127.0.0.1:6379, database 15), or an embedded one when none answers; deletes
what it wrote. Prints numbers; asserts nothing.

    .venv/bin/python tests/bench/import_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from relay.base.directory import Directory, publish  # noqa: E402
from relay.base.directory import load_yaml as load_directory  # noqa: E402
from relay.base.runtime import Runtime  # noqa: E402
from relay.base.settings import Settings  # noqa: E402
from relay.cli import embedded  # noqa: E402
from relay.school import admin, roster_files  # noqa: E402
from relay.school.roster import check_roster  # noqa: E402


def _ms(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds) * 1000:7.1f} ms   max {max(seconds) * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    server = None
    if not embedded.reachable(url):
        server = embedded.EmbeddedRedis(Path(tempfile.mkdtemp())).start()
        url = server.url
    connection = redis.Redis.from_url(url)
    runtime = Runtime(Settings(queue_prefix="bench-" + uuid.uuid4().hex[:8]), connection=connection)

    example = load_directory(ROOT / "deploy/examples/school.yaml").schools[0]
    school = example.model_copy(update={"id": "bench-" + uuid.uuid4().hex[:8]})
    timings: dict[str, list[float]] = {"read": [], "check": [], "stage (read+check+store)": [], "apply": []}
    try:
        publish(connection, Directory(schools=(school,)))
        for round_number in range(args.rounds):
            # Each round moves one student, so that every apply is a real new version.
            changed = school.model_copy(update={"students": (
                school.students[0].model_copy(update={"class_id": school.classes[(round_number + 1) % 2].id}),
                *school.students[1:])})
            workbook = roster_files.workbook(changed)
            upload = [("file", "roster.xlsx", workbook)]

            started = time.perf_counter()
            sheets = roster_files.read_upload(upload)
            read = time.perf_counter()
            check_roster(school, sheets)
            timings["read"].append(read - started)
            timings["check"].append(time.perf_counter() - read)

            started = time.perf_counter()
            checked, import_id, _ = admin.stage_import(runtime, school.id, upload, "bench")
            staged = time.perf_counter()
            assert import_id is not None, [str(p) for p in checked.problems]
            admin.apply_import(runtime, school.id, import_id, "bench")
            timings["stage (read+check+store)"].append(staged - started)
            timings["apply"].append(time.perf_counter() - staged)
        print(f"{len(school.students)} students, {len(school.staff)} staff, {len(school.classes)} classes; "
              f"workbook {len(workbook) // 1024} KiB; {args.rounds} rounds")
        for step, seconds in timings.items():
            print(f"  {step:26} {_ms(seconds)}")
        total = [a + b for a, b in zip(timings["stage (read+check+store)"], timings["apply"], strict=True)]
        print(f"  {'check + apply':26} {_ms(total)}")
    finally:
        connection.srem("relay:schools", school.id)
        keys = list(connection.scan_iter(match=f"relay:{school.id}:*", count=500))
        if keys:
            connection.delete(*keys)
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
