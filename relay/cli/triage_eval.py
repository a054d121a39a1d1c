"""`relay eval [FILE]`: how well the triage classifier does on a labelled JSON Lines file.

Each line is a `relay classify` input with its labels:
{"id", "text", "category_hint"?, "urgency", "category", "writer"?}. Prints the urgency and
category confusion matrices, P0 recall, under- and over-triage rates, category
accuracy, the misclassified lines with the classifier's reasons, and its speed on
one core. With --check, exits 1 when a quality aim is missed.

`relay eval --by-writer PATH...` scores what a writer the model has never read gets:
for each writer (a line's "writer", else its file), the model is trained on every
other writer and scored on that one, beside the rules and the combination of both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from routing import learned
from routing.classifier import Classification, classify, classify_by_rules, decide
from routing.labels import Category, Urgency
from routing.normalize import normalize

DEFAULT_FILE = "tests/data/triage_dev.jsonl"

# The aims of the triage issue: (name, bound, "min" or "max").
AIMS = (  # issue #14's aims, on writers the model never saw
    ("P0 recall", 0.97, "min"),
    ("under-triage", 0.02, "max"),
    ("over-triage", 0.10, "max"),
    ("category accuracy", 0.88, "min"),
)


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    hint: str | None
    urgency: Urgency
    category: Category
    writer: str = ""  # whose file it came from: leave-one-writer-out holds out each in turn
    line: int = 0


@dataclass(frozen=True)
class Verdict:
    example: Example
    predicted: Classification


class InputError(ValueError):
    pass


def read_examples(path: Path) -> list[Example]:
    """The labelled lines of one file; the first bad line is an InputError naming file:line."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError("a line is one JSON object")
            text, writer = row["text"], row.get("writer", path.stem)
            if not isinstance(text, str) or not text.strip():
                raise TypeError("text must be a non-empty string")
            if not isinstance(writer, str) or not writer:
                raise TypeError("writer must be a non-empty string")
            examples.append(
                Example(
                    id=str(row.get("id", number)),
                    text=text,
                    hint=row.get("category_hint") or None,
                    urgency=Urgency(row["urgency"]),
                    category=Category(row["category"]),
                    writer=writer,
                    line=number,
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a labelled line ({type(exc).__name__}: {exc})") from exc
    return examples


def metrics(verdicts: list[Verdict]) -> dict[str, float]:
    total = len(verdicts) or 1
    p0 = [v for v in verdicts if v.example.urgency is Urgency.P0]
    return {
        "P0 recall": sum(v.predicted.urgency is Urgency.P0 for v in p0) / (len(p0) or 1),
        "under-triage": sum(v.predicted.urgency.rank > v.example.urgency.rank for v in verdicts) / total,
        "over-triage": sum(v.predicted.urgency.rank < v.example.urgency.rank for v in verdicts) / total,
        "category accuracy": sum(v.predicted.category is v.example.category for v in verdicts) / total,
        "urgency accuracy": sum(v.predicted.urgency is v.example.urgency for v in verdicts) / total,
    }


def missed_aims(figures: dict[str, float]) -> list[str]:
    missed = []
    for name, bound, kind in AIMS:
        value = figures[name]
        if (kind == "min" and value < bound) or (kind == "max" and value > bound):
            missed.append(f"{name} {value:.1%} (aim {'≥' if kind == 'min' else '≤'} {bound:.0%})")
    return missed


def _matrix(title: str, labels: list[str], pairs: list[tuple[str, str]]) -> str:
    width = max(7, *(len(label) for label in labels)) + 1
    lines = [
        f"{title} (rows: label, columns: predicted)",
        " " * width + "".join(f"{p:>{width}}" for p in labels),
    ]
    for row in labels:
        counts = [sum(1 for a, b in pairs if a == row and b == col) for col in labels]
        lines.append(f"{row:<{width}}" + "".join(f"{c:>{width}}" for c in counts))
    return "\n".join(lines)


def _speed(examples: list[Example], rounds: int) -> tuple[float, float, float, float]:
    """Messages per second of one core's time, p50 and p99 per message in ms, and wall-clock messages
    per second. CPU time (not wall time) so that other processes on the machine do not count."""
    timings: list[int] = []
    started = time.perf_counter()
    for _ in range(rounds):
        for example in examples:
            t0 = time.thread_time_ns()
            classify(example.text, example.hint)
            timings.append(time.thread_time_ns() - t0)
    wall = time.perf_counter() - started
    cuts = statistics.quantiles(timings, n=100) if len(timings) > 1 else timings * 99
    per_second = len(timings) / (sum(timings) / 1e9 or 1e-9)
    return per_second, cuts[49] / 1e6, cuts[98] / 1e6, len(timings) / wall


# --- leave one writer out

KINDS = ("rules", "model", "combined")


def _held_out(model: learned.Model, examples: list[Example]) -> dict[str, list[Verdict]]:
    verdicts: dict[str, list[Verdict]] = {kind: [] for kind in KINDS}
    for example in examples:
        normalized = normalize(example.text)
        rules = classify_by_rules(example.text, example.hint)
        prediction = model.predict(normalized)
        alone = Classification(prediction.urgency, prediction.category, ("model",))
        verdicts["rules"].append(Verdict(example, rules))
        verdicts["model"].append(Verdict(example, alone))
        verdicts["combined"].append(Verdict(example, decide(rules, model, prediction, normalized)))
    return verdicts


def _row(name: str, kind: str, verdicts: list[Verdict]) -> str:
    figures = metrics(verdicts)
    p0 = sum(v.example.urgency is Urgency.P0 for v in verdicts)
    return (
        f"{name:<22} {kind:<9} {len(verdicts):>5} {p0:>4} {figures['P0 recall']:>8.1%} "
        f"{figures['under-triage']:>7.1%} {figures['over-triage']:>7.1%} {figures['category accuracy']:>7.1%}"
    )


def by_writer(paths: list[str], also_train: list[str], quiet: bool) -> tuple[int, dict[str, float]]:
    """Print the leave-one-writer-out table; return the number of writers and the pooled combined figures."""
    from relay.cli.training import fit, input_files, read_corpus

    examples = read_corpus(input_files(paths))
    extra = read_corpus(input_files(also_train)) if also_train else []
    writers = sorted({e.writer for e in examples})
    print(
        f"leave one writer out: {len(writers)} writers, {len(examples)} messages"
        + (f" (+{len(extra)} always in training)" if extra else "")
        + "; the model is trained on every other writer and scored on the one held out\n"
    )
    print(f"{'writer':<22} {'':<9} {'n':>5} {'P0':>4} {'P0 rec.':>8} {'under':>7} {'over':>7} {'categ.':>7}")
    pooled: dict[str, list[Verdict]] = {kind: [] for kind in KINDS}
    wrong: list[Verdict] = []
    for writer in writers:
        held = [e for e in examples if e.writer == writer]
        model = fit([e for e in examples if e.writer != writer] + extra)
        verdicts = _held_out(model, held)
        for kind in KINDS:
            pooled[kind] += verdicts[kind]
            print(_row(writer, kind, verdicts[kind]))
        wrong += [
            v for v in verdicts["combined"]
            if v.predicted.urgency.rank > v.example.urgency.rank or v.predicted.category is not v.example.category
        ]
    for kind in KINDS:
        print(_row("pooled", kind, pooled[kind]))
    if not quiet and wrong:
        print(f"\ncombined, under-triaged or wrong category ({len(wrong)}):")
        for v in wrong:
            label = f"{v.example.urgency.value} {v.example.category.value}"
            got = f"{v.predicted.urgency.value} {v.predicted.category.value}"
            print(f"  {v.example.writer}/{v.example.id}: {label} → {got}  | {'; '.join(v.predicted.reasons)}")
    return len(writers), metrics(pooled["combined"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="relay eval", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "file", nargs="*", default=[DEFAULT_FILE],
        help=f"labelled JSON Lines (default {DEFAULT_FILE}); with --by-writer, files or folders of them",
    )
    parser.add_argument(
        "--by-writer", action="store_true", help="leave-one-writer-out: rules, model and combination"
    )
    parser.add_argument(
        "--also-train", nargs="*", default=[], metavar="PATH",
        help="with --by-writer: labelled files or folders always in training, never held out",
    )
    parser.add_argument("--quiet", action="store_true", help="do not list the misclassified lines")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the file when timing (default 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a quality aim is missed")
    args = parser.parse_args(argv)

    if args.by_writer:
        from relay.cli.training import TrainingError

        try:
            writers, pooled = by_writer(args.file, args.also_train, args.quiet)
        except (OSError, InputError, TrainingError) as exc:
            print(f"relay eval: {exc}", file=sys.stderr)
            return 2
        missed = missed_aims(pooled)
        print("\naims (pooled, combined): " + ("all met" if not missed else "missed: " + "; ".join(missed)))
        return 1 if args.check and missed else 0
    if len(args.file) != 1:
        parser.error("one file at a time, unless --by-writer")
    args.file = args.file[0]
    try:
        examples = read_examples(Path(args.file))
    except (OSError, InputError) as exc:
        print(f"relay eval: {exc}", file=sys.stderr)
        return 2
    if not examples:
        print(f"relay eval: {args.file}: no labelled lines", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    classify("预热")  # loads the lexicons once; not part of the per-message speed
    load_ms = (time.perf_counter() - t0) * 1000
    verdicts = [Verdict(e, classify(e.text, e.hint)) for e in examples]

    urgencies = [u.value for u in Urgency]
    categories = [c.value for c in Category]
    print(f"{args.file}: {len(examples)} messages\n")
    print(
        _matrix(
            "urgency", urgencies, [(v.example.urgency.value, v.predicted.urgency.value) for v in verdicts]
        )
    )
    print()
    print(
        _matrix(
            "category", categories, [(v.example.category.value, v.predicted.category.value) for v in verdicts]
        )
    )
    print()
    figures = metrics(verdicts)
    for name, value in figures.items():
        print(f"{name:<18} {value:7.1%}")

    wrong = [
        v
        for v in verdicts
        if v.predicted.urgency is not v.example.urgency or v.predicted.category is not v.example.category
    ]
    if not args.quiet and wrong:
        print(f"\nmisclassified ({len(wrong)}):")
        for v in wrong:
            label = f"{v.example.urgency.value} {v.example.category.value}"
            got = f"{v.predicted.urgency.value} {v.predicted.category.value}"
            print(f"  {v.example.id}: {label} → {got}  | {'; '.join(v.predicted.reasons)}")

    per_second, p50, p99, wall = _speed(examples, max(1, args.rounds))
    print(
        f"\nspeed: {per_second:,.0f} messages/s on one core (CPU time), p50 {p50:.3f} ms, p99 {p99:.3f} ms"
        f" per message; {wall:,.0f} messages/s by the wall clock"
    )
    print(f"lexicon load (once per process): {load_ms:.0f} ms")

    missed = missed_aims(figures)
    print("aims: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
