"""`relay simulate --messages`: a labelled corpus replayed over the week, and the emergencies that waited.

The corpus's lines land at the hours the generator gives their kind of message; a tiny labelled
file goes through the real system (`relay simulate` as a subprocess: a private Redis, `relay serve`,
`relay worker`s, the simulated clock), and a labelled P0 that the classifier reads lower (found by
asking `relay classify`, as an operator would) is counted as an emergency that waited, with the
urgency it was given. A file with a malformed line or an unknown label is refused, naming the line.
The held-out writers' week is `make replay-heldout`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.spine import RELAY, ROOT

from relay.base.directory import load_yaml
from relay.cli.replay import corpus
from relay.cli.replay.messages import EMERGENCY_HOURS_AT_NIGHT, EMERGENCY_HOURS_IN_SCHOOL, KINDS
from relay.cli.triage_eval import InputError
from routing.calendar import SchoolCalendar

CONFIG = ROOT / "deploy" / "examples" / "school.yaml"
WRITER = ROOT / "tests" / "data" / "corpus" / "w01.jsonl"
MONDAY = dt.date(2026, 9, 21)
# Emergencies told the way the classifier may not expect; the test replays the first it reads lower.
HARD_EMERGENCIES = (  # an allergic reaction at school with breathing trouble; a head injury at school
    "请假：孩子今天在学校吃了花生，已经开始起疹子，喘气有点费劲",
    "孩子今天请假，刚在学校吃了花生，嗓子有点紧，有点喘",
    "请个假，孩子今天在学校摔了一跤，头有点晕，有点想吐，有点站不稳",
)
PLAIN_EMERGENCY = "紧急！孩子刚打电话说在学校操场抽搐，口吐白沫，快去看看！"


def relay(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "REDIS_URL"}
    return subprocess.run([RELAY, *args], input=stdin, capture_output=True, text=True, env=clean, cwd=ROOT,
                           timeout=timeout)


def classify(texts: list[str]) -> list[dict[str, Any]]:
    done = relay("classify", stdin="".join(json.dumps({"id": n, "text": t}, ensure_ascii=False) + "\n"
                                           for n, t in enumerate(texts)))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def write_lines(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


# Placing a corpus over the week ---------------------------------------------------------------------


def _hour(moment: dt.datetime) -> float:
    return moment.hour + moment.minute / 60 + moment.second / 3600


def _inside(hours: tuple[tuple[float, float], ...], moment: dt.datetime) -> bool:
    return any(start <= _hour(moment) <= end for start, end in hours)


def test_a_writers_lines_land_at_the_hours_of_their_kind() -> None:
    school = load_yaml(CONFIG).schools[0]
    calendar = SchoolCalendar(school)
    examples = corpus.read([WRITER])
    week = corpus.place(examples, school, dt.date(2026, 9, 20), 7, seed=1)

    assert week == corpus.place(examples, school, dt.date(2026, 9, 20), 7, seed=1)
    assert week != corpus.place(examples, school, dt.date(2026, 9, 20), 7, seed=2)
    assert [m.index for m in week] == list(range(len(examples)))
    assert [m.at for m in week] == sorted(m.at for m in week)
    assert Counter(m.label_id for m in week) == Counter(e.id for e in examples)  # every line, once
    labels = {e.id: e for e in examples}
    kinds = {k.name: k for k in KINDS}
    students = {s.id: s for s in school.students}
    for message in week:
        example = labels[message.label_id]
        assert (message.text, message.intended, message.labelled_category, message.writer) == (
            example.text, example.urgency.value, example.category.value, "w01")
        assert message.guardian_id in {g.id for g in students[message.student_id].guardians}
        day = calendar.day(message.at.date())
        if message.kind == "emergency":
            assert message.intended == "P0"
            assert _inside(EMERGENCY_HOURS_AT_NIGHT, message.at) or (
                day.school_day and _inside(EMERGENCY_HOURS_IN_SCHOOL, message.at))
        else:
            kind = kinds[message.kind]
            assert kind.intended == message.intended
            assert _inside(kind.school_hours if day.school_day else kind.off_hours, message.at)
    absences = [m for m in week if m.kind == "absence"]
    assert absences and all(calendar.day(m.at.date()).school_day for m in absences)
    assert Counter(m.intended for m in week)["P0"] == sum(e.urgency.value == "P0" for e in examples)


def test_an_empty_file_is_not_a_corpus(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no labelled lines"):
        corpus.read([write_lines(tmp_path / "empty.jsonl", [])])


# Bad files: refused before anything starts -----------------------------------------------------------


GOOD = {"id": "g-1", "text": "老师好，孩子发烧了，今天请假一天", "urgency": "P1", "category": "attendance"}


@pytest.mark.parametrize(("bad", "says"), [
    ('{"id": "b-1", "text": "孩子发烧了", "urgency": "P1", ', "JSONDecodeError"),
    ({"id": "b-1", "text": "孩子在学校晕倒了", "urgency": "P5", "category": "medical"}, "'P5'"),
    ({"id": "b-1", "text": "孩子在学校晕倒了", "urgency": "P0", "category": "health"}, "'health'"),
    ({"id": "b-1", "text": "孩子在学校晕倒了", "category": "medical"}, "urgency"),
])
def test_a_bad_line_is_refused_naming_it(tmp_path: Path, bad: dict[str, Any] | str, says: str) -> None:
    path = write_lines(tmp_path / "words.jsonl", [GOOD, "", GOOD, bad, GOOD])
    out = tmp_path / "out"

    done = relay("simulate", "--messages", str(path), "--days", "1", "--classes", "1", "--out", str(out))

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:4:" in done.stderr and says in done.stderr
    assert not out.exists() and "replay:" not in done.stdout  # nothing ran


# A tiny labelled week through the real system -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    verdicts = classify([*HARD_EMERGENCIES, PLAIN_EMERGENCY])
    lower = [(text, v) for text, v in zip(HARD_EMERGENCIES, verdicts, strict=False) if v["urgency"] != "P0"]
    assert lower, "the classifier now reads every one of HARD_EMERGENCIES as P0: add one it reads lower"
    assert verdicts[-1]["urgency"] == "P0"
    missed_text, missed = lower[0]
    folder = tmp_path_factory.mktemp("tiny")
    rows: list[dict[str, Any] | str] = [
        {"id": "t-missed", "text": missed_text, "urgency": "P0", "category": "medical", "writer": "tiny"},
        {"id": "t-plain", "text": PLAIN_EMERGENCY, "urgency": "P0", "category": "medical", "writer": "tiny"},
        {"id": "t-absent", "text": "老师好，孩子发烧38度5，今天请假一天", "urgency": "P1", "category": "attendance",
         "category_hint": "attendance", "writer": "tiny"},
        {"id": "t-homework", "text": "请问今天数学作业是哪几页？", "urgency": "P2", "category": "academic",
         "writer": "tiny"},
        {"id": "t-thanks", "text": "谢谢老师！", "urgency": "P3", "category": "feedback", "writer": "tiny"},
    ]
    path = write_lines(folder / "tiny.jsonl", rows)
    done = relay("simulate", "--messages", str(path), "--start", MONDAY.isoformat(), "--days", "1", "--classes",
                 "1", "--seed", "5", "--out", str(folder / "out"), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))
    return {"summary": summary, "stdout": done.stdout, "missed": missed}


def test_the_labelled_lines_went_through_the_real_system(tiny_run: dict[str, Any]) -> None:
    summary = tiny_run["summary"]
    assert summary["messages"]["total"] == summary["messages"]["accepted"] == 5
    assert summary["ownership"]["requests"] == summary["ownership"]["with_owner"] == 5
    assert summary["notifications"]["total"] > 0 and summary["p0"]["requests"] >= 1
    assert summary["health"]["dead_letters"] == summary["health"]["bad_signatures"] == 0
    assert summary["health"]["drain_timeouts"] == 0
    labelled = summary["labelled"]
    assert labelled["messages"] == 5 and labelled["writers"] == {"tiny": 5}
    assert labelled["triage_model"]["writers_it_read"] == []


def test_a_labelled_p0_read_lower_is_counted_as_waiting(tiny_run: dict[str, Any]) -> None:
    emergencies, missed = tiny_run["summary"]["labelled"]["emergencies"], tiny_run["missed"]
    assert emergencies["labelled_p0"] == 2 and emergencies["not_accepted"] == 0
    assert emergencies["given"]["P0"] == 1 and emergencies["given"][missed["urgency"]] == 1
    assert emergencies["p0_recall"] == 0.5
    assert emergencies["paged_within_minute"] == 1  # the plainly written one
    assert emergencies["waited"] == 1
    (wait,) = emergencies["waits"]
    assert wait["id"] == "t-missed" and wait["writer"] == "tiny"
    assert wait["given"] == f"{missed['urgency']} {missed['category']}"  # why: what it was given
    assert wait["reasons"] == missed["reasons"]
    assert wait["ended_by"] in ("acknowledged", "resolved", "never") and wait["waited_s"] >= 60
    assert emergencies["waited_over_5_min"] == int(wait["waited_s"] > 300)
    assert emergencies["wait_s"]["max"] == wait["waited_s"]
    assert "t-missed: given " + wait["given"] in tiny_run["stdout"]
    assert "labelled emergencies: 2, P0 recall 50.0%" in tiny_run["stdout"]
