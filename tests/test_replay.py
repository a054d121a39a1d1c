"""The school-week replay and the principal's weekly report.

The generator is deterministic for a seed; a one-day, one-class replay runs through the real
system (a private Redis, `relay serve`, two `relay worker` processes, a simulated clock) twice
with the same seed, and must come out with the same figures and keep Relay's promises:
no routine notification out of hours, every emergency alerted at once, every request owned
and due, every promised answer time kept when staff answer within their SLA.
The full week is `make replay`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.spine import staff_page_session

from relay.base import tokens
from relay.base.directory import load_yaml
from relay.cli.replay import summary as replay_summary
from relay.cli.replay.harness import Options, Replay, run
from relay.cli.replay.messages import generate
from relay.cli.replay.stack import Stack
from relay.pages.report import duration_words
from relay.school import report
from routing.calendar import SchoolCalendar

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "examples" / "school.yaml"
START = dt.date(2026, 9, 20)  # the default window: a make-up Sunday, then the Mid-autumn holiday on 09-25


@pytest.fixture(scope="module")
def school() -> Any:
    return load_yaml(CONFIG).schools[0]


def test_the_default_week_has_a_holiday_and_a_make_up_day(school: Any) -> None:
    calendar = SchoolCalendar(school)
    kinds = {calendar.day(START + dt.timedelta(days=n)).kind.value for n in range(7)}
    assert {"make-up workday", "holiday", "school day"} <= kinds


def test_the_same_seed_writes_the_same_week(school: Any) -> None:
    week = generate(school, START, 7, seed=7)
    assert week == generate(school, START, 7, seed=7)
    assert week != generate(school, START, 7, seed=8)
    assert [m.index for m in week] == list(range(len(week)))
    assert 400 < len(week) < 1200  # ~1,200 students: a few hundred messages a week


def test_parents_write_at_their_hours_in_their_words(school: Any) -> None:
    week = generate(school, START, 7, seed=1)
    calendar = SchoolCalendar(school)
    for message in week:
        hour = message.at.hour + message.at.minute / 60
        if message.kind == "absence":
            assert 6.5 <= hour <= 8.0 and calendar.day(message.at.date()).school_day
        elif message.kind == "pickup":
            assert 14.0 <= hour <= 16.5
        elif message.kind == "chatter":
            assert not calendar.day(message.at.date()).school_day
    kinds = Counter(m.kind for m in week)
    assert kinds["emergency"] >= 3 and kinds["homework"] > kinds["emergency"]
    texts = [m.text for m in week]
    english = [t for t in texts if sum(ch.isascii() for ch in t) > 0.8 * len(t)]
    assert 0 < len(english) < len(texts) * 0.2  # mostly Chinese, some English
    assert any(wrong in t for t in texts for wrong in ("做业", "请加", "麻凡", "再家"))  # typos
    assert any(e in t for t in texts for e in ("🙏", "😊", "😅", "👍", "🌹"))
    evening_homework = [m for m in week if m.kind == "homework" and calendar.day(m.at.date()).school_day]
    assert all(19.0 <= m.at.hour + m.at.minute / 60 <= 22.0 for m in evening_homework)


def test_report_verdicts_and_durations() -> None:
    now = dt.datetime(2026, 9, 21, 12, tzinfo=dt.UTC)
    due = "2026-09-21T10:00:00+00:00"
    assert report.verdict("2026-09-21T09:59:00+00:00", due, now) == "on_time"
    assert report.verdict("2026-09-21T10:01:00+00:00", due, now) == "late"
    assert report.verdict(None, due, now) == "late"
    assert report.verdict(None, "2026-09-22T10:00:00+00:00", now) == "pending"
    assert report.verdict(None, None, now) is None
    assert report.week_start(dt.date(2026, 9, 24)) == dt.date(2026, 9, 21)
    assert duration_words(95, "zh") == "1分35秒"
    assert duration_words(3 * 3600 + 120, "en") == "3h 2m"
    assert duration_words(None, "zh") == "—"


# One day, one class, twice ------------------------------------------------------------------------


def _pages(stack: Stack, seen: dict[str, Any]) -> None:
    """With the replayed stack still up: the weekly report, as the principal and as a homeroom teacher."""
    def session(staff_id: str) -> httpx.Client:
        client = httpx.Client(base_url=stack.url, timeout=10)
        token = tokens.caller_token("staff", staff_id, stack.school_id, [stack.secret_key], 600)
        staff_page_session(client, token)  # the session cookie stays in the client
        return client

    seen["index"] = stack.redis.zcard(f"relay:{stack.school_id}:requests")  # the report's per-school index
    principal, homeroom = session("t-ma-principal"), session("t-hr-11")
    try:
        seen["page"] = principal.get("/staff/report", params={"week": START.isoformat()})
        seen["page_en"] = principal.get("/staff/report", params={"week": START.isoformat(), "lang": "en"})
        seen["csv"] = principal.get("/staff/report.csv", params={"week": START.isoformat(), "lang": "en"})
        seen["out_of_hours_csv"] = principal.get("/staff/report.csv", params={
            "week": START.isoformat(), "lang": "en", "table": "out_of_hours"})
        seen["refused"] = homeroom.get("/staff/report", params={"week": START.isoformat()})
        seen["refused_csv"] = homeroom.get("/staff/report.csv")
    finally:
        principal.close()
        homeroom.close()


@pytest.fixture(scope="module")
def replays() -> list[tuple[Replay, dict[str, Any]]]:
    options = Options(config=CONFIG, start=START, days=1, seed=3, classes=1, workers=2)
    seen: list[dict[str, Any]] = [{}, {}]

    def one(n: int) -> Replay:
        return run(options, say=lambda _: None, inspect=(lambda stack: _pages(stack, seen[0])) if n == 0 else None)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, range(2)))
    return [(results[0], seen[0]), (results[1], seen[1])]


@pytest.fixture(scope="module")
def figures(replays: list[tuple[Replay, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [replay_summary.build(replay) for replay, _ in replays]


def test_the_same_seed_gives_the_same_figures(figures: list[dict[str, Any]]) -> None:
    first, second = ({k: v for k, v in f.items() if k != "latency"} for f in figures)
    assert first == second
    assert first["health"] == {"dead_letters": 0, "duplicate_notifications": 0, "bad_signatures": 0,
                               "drain_timeouts": 0}


def test_no_routine_notification_out_of_hours(figures: list[dict[str, Any]]) -> None:
    summary = figures[0]
    assert summary["notifications"]["total"] > 0
    out = summary["notifications"]["out_of_hours"]["by_urgency"]
    assert out["P2"] == 0 and out["P3"] == 0
    # The make-up Sunday's early questions and the evening's were held, then sent as a digest.
    assert summary["held_for_morning"]["requests"] > 0 and summary["held_for_morning"]["digests"] > 0


def test_teachers_mornings_outside_hours_only_p0_pages_and_digests_one_a_morning_no_self_confirmation(
    figures: list[dict[str, Any]]
) -> None:
    mornings = figures[0]["mornings"]
    assert mornings["out_of_hours_other"] == 0, mornings["out_of_hours_by_kind"]
    assert set(mornings["out_of_hours_by_kind"]) <= {"P0 page", "digest", "on duty (child on site)"}
    assert mornings["most_digests_per_person_per_morning"] == 1
    assert mornings["self_confirmations"] == 0
    assert figures[0]["notifications"]["by_event"].get("request.ack_confirmed", 0) == 0
    assert mornings["per_academic_affairs_teacher_per_school_day"] > 0


def test_every_emergency_is_alerted_at_once(replays: list[tuple[Replay, dict[str, Any]]],
                                             figures: list[dict[str, Any]]) -> None:
    replay, p0 = replays[0][0], figures[0]["p0"]
    assert p0["requests"] >= 1
    assert p0["first_notification_same_minute"] == p0["requests"]
    assert figures[0]["latency"]["p0_first_notification_ms"]["count"] == p0["requests"]
    for record in replay.records.values():
        if record.urgency == "P0":
            kinds = {e["kind"] for e in replay.timelines[record.id]}
            assert "acknowledged" in kinds or "escalated" in kinds


def test_every_request_has_an_owner_and_a_due_time(figures: list[dict[str, Any]]) -> None:
    ownership = figures[0]["ownership"]
    assert ownership["requests"] == figures[0]["messages"]["total"] > 0
    assert ownership["with_owner"] == ownership["with_due_time"] == ownership["requests"]


def test_promises_are_kept_when_staff_answer_within_their_sla(figures: list[dict[str, Any]]) -> None:
    promises = figures[0]["promises"]
    assert promises["staff_within_sla"]["total"] > 0
    assert promises["staff_within_sla"]["kept"] == promises["staff_within_sla"]["total"]
    assert promises["broken_although_staff_within_sla"] == []
    assert all(status.endswith("200") for status in figures[0]["staff_actions"])


def test_the_weekly_report_of_the_replayed_day(replays: list[tuple[Replay, dict[str, Any]]]) -> None:
    replay, seen = replays[0]
    page = seen["page"]
    assert page.status_code == 200, page.text[:500]
    assert "每周报告" in page.text and "<svg" in page.text and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert seen["page_en"].status_code == 200 and "Weekly report" in seen["page_en"].text
    rows = list(csv.DictReader(io.StringIO(seen["csv"].text.lstrip("\ufeff"))))
    assert seen["csv"].headers["content-type"].startswith("text/csv")
    assert len(rows) == len(replay.records) == seen["index"]
    assert Counter(r["urgency"] for r in rows) == Counter(r.urgency for r in replay.records.values())
    assert not any(message.text in seen["csv"].text for message in replay.messages)  # no parent's words
    assert seen["refused"].status_code == 403 and seen["refused_csv"].status_code == 403
    # Whose mornings are still taken: one table, on the page and as CSV.
    assert "非工作时间收到的通知（按接收人和类型）" in page.text
    table = list(csv.reader(io.StringIO(seen["out_of_hours_csv"].text.lstrip("\ufeff"))))
    assert table[0] == ["To", "P0 page", "Escalation", "On duty (child on site)", "Digest", "New request",
                        "FYI copy", "Other", "Total"]
    assert all(int(row[-1]) == sum(int(n) for n in row[1:-1]) > 0 for row in table[1:])


def test_the_charts_are_drawn(figures: list[dict[str, Any]], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from relay.cli.replay import plots

    written = plots.write(figures[0], tmp_path)
    assert [p.name for p in written] == ["notifications_per_hour.png", "notifications_per_staff_day.png",
                                         "group_chat_vs_relay.png", "workload.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
