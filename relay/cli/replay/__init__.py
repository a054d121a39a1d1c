"""`relay simulate`: a realistic school week replayed through the real system, on a simulated clock.

messages.py writes the parents' week (or corpus.py places a labelled corpus's lines over it), staff.py decides how staff answer, stack.py runs a private
Redis with `relay serve` and `relay worker` processes, harness.py moves the clock and records,
summary.py and plots.py turn the record into figures (docs/replay/summary.json and PNGs), waits.py
adds the labelled emergencies that waited.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any


def headline(summary: dict[str, Any]) -> list[str]:
    """The figures worth printing, one line each."""
    notes, p0, promises = summary["notifications"], summary["p0"], summary["promises"]
    chat = summary["group_chat"]
    mornings = summary["mornings"]
    latency = summary["latency"]["p0_first_notification_ms"]
    within = promises["staff_within_sla"]
    return [
        f"messages: {summary['messages']['total']} ({summary['messages']['by_urgency']}) from "
        f"{summary['school']['classes']} classes, {summary['school']['students']} students",
        f"notifications to staff: {notes['total']} (of which {notes['confirmations_of_own_ack']} confirm the "
        f"person's own acknowledgement); outside school hours by urgency: {notes['out_of_hours']['by_urgency']}",
        f"held for the morning digest: {summary['held_for_morning']['requests']} requests in "
        f"{summary['held_for_morning']['digests']} digests",
        f"mornings: outside school hours by kind {mornings['out_of_hours_by_kind']} (aim: P0 pages and digests "
        f"only, other: {mornings['out_of_hours_other']}); most digests per person per morning: "
        f"{mornings['most_digests_per_person_per_morning']} (aim: at most 1); self-confirmations: "
        f"{mornings['self_confirmations']} (aim: 0); notifications per academic-affairs teacher per school day: "
        f"{mornings['per_academic_affairs_teacher_per_school_day']} (aim: at most {mornings['aim_at_most']}, a third "
        f"fewer than {mornings['before']} before the roll call)",
        f"P0: {p0['requests']} requests, first notification in the same minute for "
        f"{p0['first_notification_same_minute']}, real latency median {latency['median']} ms / max {latency['max']} ms; "
        f"to acknowledgement or escalation median {p0['to_ack_or_escalation_s']['median']} s; "
        f"escalated {p0['escalated']}",
        f"promised answer times kept: {promises['kept']}/{promises['total']}; when staff answered within their SLA: "
        f"{within['kept']}/{within['total']}",
        f"owned per academic-affairs teacher: {summary['workload']['owned']}",
        f"class group chats: {chat['messages']} messages, {chat['per_class_per_day']['mean']} per class per day "
        f"(max {chat['per_class_per_day']['max']}), {chat['after_20']} after 20:00 "
        f"({chat['after_20_per_class_per_day']} per class per day); Relay: "
        f"{chat['relay_per_homeroom_teacher_per_day']} notifications per homeroom teacher per day, "
        f"{chat['relay_after_20_per_homeroom_teacher_per_day']} after 20:00; to all staff after 20:00: "
        f"{notes['after_20']['total']}",
        f"health: {summary['health']}; ran in {summary['latency']['real_seconds']} s",
    ]


def main(config: Path, school: str | None, start: dt.date, days: int, seed: int, classes: int | None,
         out: Path, workers: int, messages: tuple[Path, ...] = ()) -> int:
    from relay.cli.replay import corpus, plots, waits
    from relay.cli.replay.harness import Options, run
    from relay.cli.replay.summary import build
    from relay.cli.triage_eval import InputError

    if messages:  # a bad file is refused before anything starts
        try:
            corpus.read(messages)
        except (OSError, InputError) as exc:
            print(f"relay simulate: {exc}", file=sys.stderr)
            return 2
    replay = run(Options(config=config, school=school, start=start, days=days, seed=seed, classes=classes,
                         workers=workers, messages=messages))
    summary = build(replay)
    if messages:
        summary["labelled"] = waits.build(replay)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    charts = plots.write(summary, out)
    for line in headline(summary) + (waits.headline(summary["labelled"]) if messages else []):
        print(line)
    print(f"written: {out / 'summary.json'}" + "".join(f", {p.name}" for p in charts))
    return 0
