"""Triage speed: messages per second on one core and p99 per message, for the rules, the model and both,
and how long `relay classify` takes to start and answer one line.

Times every labelled message in tests/data (and tests/data/corpus when it is there) --rounds times,
each call measured in CPU time of this thread (other processes on the machine do not count).

    .venv/bin/python tests/bench/triage_bench.py [--rounds 5]

Aims (triage issue): >= 5,000 messages/s, p99 <= 1 ms per message (rules and model together);
`relay classify` answers its first line in <= 1 s; the model file <= 20 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from relay.cli.training import input_files, read_corpus  # noqa: E402
from routing import learned  # noqa: E402
from routing.classifier import classify, classify_by_rules  # noqa: E402
from routing.normalize import normalize  # noqa: E402


def timed(call: Callable[[str, str | None], object], messages: list[tuple[str, str | None]], rounds: int) -> str:
    timings: list[int] = []
    for _ in range(rounds):
        for text, hint in messages:
            t0 = time.thread_time_ns()
            call(text, hint)
            timings.append(time.thread_time_ns() - t0)
    cuts = statistics.quantiles(timings, n=100)
    per_second = len(timings) / (sum(timings) / 1e9)
    return f"{per_second:>9,.0f} messages/s   p50 {cuts[49] / 1e6:.3f} ms   p99 {cuts[98] / 1e6:.3f} ms"


def startup() -> float:
    """Seconds from starting `relay classify` to its first answer (one message, the model loaded)."""
    line = json.dumps({"id": 1, "text": "孩子刚才在学校晕倒了"}, ensure_ascii=False) + "\n"
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("relay")), "classify"], input=line,
                          capture_output=True, text=True, cwd=ROOT, check=True)
    elapsed = time.perf_counter() - started
    assert json.loads(done.stdout)["urgency"], done.stdout
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    folders = [str(ROOT / "tests/data")] + ([str(ROOT / "tests/data/corpus")] if (ROOT / "tests/data/corpus").is_dir() else [])
    messages = [(e.text, e.hint) for e in read_corpus(input_files(folders))]
    model = learned.default_model()
    if model is None:
        print("the model file cannot be read: only the rules are timed", file=sys.stderr)
        return 1
    classify("预热")  # lexicons and model load once per process; not part of the per-message speed
    print(f"{len(messages)} messages x {args.rounds} rounds, one core (CPU time)")
    print(f"rules alone      {timed(lambda t, h: classify_by_rules(t, h), messages, args.rounds)}")
    print(f"model alone      {timed(lambda t, h: model.predict(normalize(t)), messages, args.rounds)}")
    print(f"rules and model  {timed(classify, messages, args.rounds)}")
    starts = sorted(startup() for _ in range(3))
    print(f"relay classify: first answer {starts[1]:.2f} s after start (median of 3)")
    print(f"model file: {learned.MODEL_FILE.stat().st_size / 1e6:.1f} MB, {len(model.vocabulary):,} n-grams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
