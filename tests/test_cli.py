"""The `relay` command's public contract, run as a real subprocess. Commands that need no Redis are
run with REDIS_URL pointing at a closed port."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.spine import ALLOW_LOOPBACK, RELAY, ROOT, free_port

from relay.base import tokens

KEY = "cli-test-key-7f3a"
EXAMPLE = ROOT / "deploy/examples/school.yaml"


def relay(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "REDIS_URL"}
    clean.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RELAY_SECRET_KEY=KEY, **ALLOW_LOOPBACK)
    clean.update(env)
    return subprocess.run([RELAY, *args], input=stdin, capture_output=True, text=True, env=clean, cwd=ROOT, timeout=60)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


# classify ---------------------------------------------------------------------------------------------


def test_classify_answers_one_line_per_input_in_order_with_ids_echoed() -> None:
    inputs = [
        {"id": "a-1", "text": "孩子在学校发烧了"},
        {"id": 2, "text": "孩子今天发烧在家，请假一天"},
        {"id": "a-3", "text": "谢谢老师！"},
        {"id": None, "text": "请问校服费怎么交？", "category_hint": "admin"},
    ] + [{"id": f"n-{i}", "text": "明天的数学考试考哪些内容？"} for i in range(40)]
    stdin = "\n".join(json.dumps(item, ensure_ascii=False) for item in inputs) + "\n\n"

    done = relay("classify", stdin=stdin)

    assert done.returncode == 0, done.stderr
    answers = lines(done.stdout)
    assert [a["id"] for a in answers] == [item["id"] for item in inputs]
    for answer in answers:
        assert set(answer) == {"id", "urgency", "category", "reasons"}
        assert answer["urgency"] in {"P0", "P1", "P2", "P3"}
        assert answer["category"] in {"medical", "safety", "attendance", "pickup", "academic", "admin", "feedback",
                                      "other"}
        assert isinstance(answer["reasons"], list) and all(isinstance(r, str) for r in answer["reasons"])
    assert (answers[0]["urgency"], answers[0]["category"]) == ("P0", "medical")
    assert (answers[1]["urgency"], answers[1]["category"]) == ("P1", "attendance")


def test_classify_names_the_line_it_cannot_read() -> None:
    done = relay("classify", stdin='{"id": 1, "text": "你好"}\n{"id": 2}\n')
    assert done.returncode != 0
    assert "line 2" in done.stderr


# config check -------------------------------------------------------------------------------------------


def test_config_check_accepts_the_example() -> None:
    done = relay("config", "check", str(EXAMPLE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: hld-xc-01")


def test_config_check_names_every_problem_with_its_place(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    school = raw["schools"][0]
    school["students"][3]["class_id"] = "g9c9"
    school["classes"][1]["academic_affairs"] = "t-nobody"
    school["staff"].append(dict(school["staff"][0]))
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    done = relay("config", "check", str(broken))

    assert done.returncode == 1
    printed = done.stdout.splitlines()
    assert "schools[0].students[3].class_id: unknown class 'g9c9'" in printed
    assert "schools[0].classes[1].academic_affairs: unknown staff 't-nobody'" in printed
    last = len(school["staff"]) - 1
    assert f"schools[0].staff[{last}].id: duplicate staff id 't-wang'" in printed
    assert f"{len(printed)} problem(s) in {broken}" in done.stderr


def test_config_check_points_at_the_yaml_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "syntax.yaml"
    broken.write_text("schools:\n  - id: x\n    name: [unclosed\n", encoding="utf-8")
    done = relay("config", "check", str(broken))
    assert done.returncode == 1
    assert "line " in done.stdout and "not valid YAML" in done.stdout


# token ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "subject"), [("parent", "g-1001a"), ("staff", "t-wang")])
def test_token_round_trip(kind: str, subject: str) -> None:
    done = relay("token", kind, subject, RELAY_CONFIG=str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    caller = tokens.read_caller(done.stdout.strip(), [KEY])
    assert (caller.kind, caller.id, caller.school) == (kind, subject, "hld-xc-01")
    with pytest.raises(tokens.TokenError):
        tokens.read_caller(done.stdout.strip(), ["another-key"])


# calendar and eta ----------------------------------------------------------------------------------------


def test_calendar_lines_have_exactly_the_contracts_keys() -> None:
    done = relay("calendar", "--school", "hld-xc-01", "--from", "2026-09-30", "--days", "5")
    assert done.returncode == 0, done.stderr
    days = lines(done.stdout)
    assert [d["date"] for d in days] == ["2026-09-30", "2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"]
    for day in days:
        assert set(day) == {"date", "school_day", "reason", "hours"}
        assert isinstance(day["school_day"], bool) and isinstance(day["reason"], str)
    assert days[0]["school_day"] is True and days[0]["hours"] == "07:40-16:30"
    assert days[1]["school_day"] is False and "holiday" in days[1]["reason"] and days[1]["hours"] is None


@pytest.mark.parametrize(("urgency", "at"), [("P0", "2026-10-01T23:00:00+08:00"), ("P2", "2026-11-27T18:00:00+08:00"),
                                             ("P3", "2026-11-25T10:00:00+08:00")])
def test_eta_line_has_exactly_the_contracts_keys(urgency: str, at: str) -> None:
    done = relay("eta", "--urgency", urgency, "--at", at)
    assert done.returncode == 0, done.stderr
    [line] = lines(done.stdout)
    assert set(line) == {"ack_due_at", "resolve_due_at", "eta_text"}
    assert line["eta_text"]
    if urgency == "P0":
        assert line["ack_due_at"] == "2026-10-01T23:02:00+08:00"
    if urgency == "P3":
        assert line["ack_due_at"] is None and line["resolve_due_at"]


def test_eta_refuses_a_bad_moment() -> None:
    done = relay("eta", "--urgency", "P1", "--at", "yesterday-ish")
    assert done.returncode != 0 and not done.stdout


# A year nobody knows yet, and the holidays a school enters ------------------------------------------------


def test_calendar_reaching_a_year_nobody_knows_estimates_it_and_warns() -> None:
    done = relay("calendar", "--from", "2026-12-01", "--days", "60")

    assert done.returncode == 0, done.stderr
    days = lines(done.stdout)
    assert len(days) == 60
    estimated = [d for d in days if d.get("estimated")]
    assert estimated and all(d["date"] >= "2027-01-01" and d["estimated"] is True for d in estimated)
    assert all(set(d) == {"date", "school_day", "reason", "hours"} for d in days if d["date"] < "2027")
    assert "2027" in done.stderr and "estimated" in done.stderr


@pytest.mark.parametrize("at", ["2026-12-31T20:00:00+08:00", "2027-01-01T09:00:00+08:00", "2027-02-10T12:00:00+08:00",
                                "2027-06-30T18:00:00+08:00", "2027-10-01T08:00:00+08:00"])
@pytest.mark.parametrize("urgency", ["P1", "P2", "P3"])
def test_eta_into_a_year_nobody_knows_answers_with_an_estimate(urgency: str, at: str) -> None:
    done = relay("eta", "--urgency", urgency, "--at", at)

    assert done.returncode == 0, done.stderr
    [line] = lines(done.stdout)
    assert line["eta_text"] and line["resolve_due_at"]
    if line.get("estimated"):
        assert line["estimated"] is True and "2027" in done.stderr


def test_eta_with_next_years_holidays_entered_is_no_estimate(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["calendar"] = {"holidays": [{"date": "2027-01-01", "name": "元旦"}]}
    config = tmp_path / "school.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    done = relay("eta", "--urgency", "P2", "--at", "2026-12-31T20:00:00+08:00", "--config", str(config))

    assert done.returncode == 0, done.stderr
    [line] = lines(done.stdout)
    assert "estimated" not in line and not done.stderr
    assert line["ack_due_at"].startswith("2027-01-04")  # Friday is New Year's Day: Monday


def test_config_check_names_each_calendar_mistake_at_its_place(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["calendar"] = {
        "holidays": [{"from": "2027-02-11", "to": "2027-02-05", "name": "春节"}, {"date": "2027-05-01"},
                     {"date": "2027-10-01", "from": "2027-10-01", "name": "国庆节"}, {"from": "2027-01-01", "name": "x",
                                                                                  "too": "2027-01-03"}],
        "workdays": [{"date": "2027-02-30", "name": "春节调休"}],
    }
    config = tmp_path / "school.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    done = relay("config", "check", str(config))

    assert done.returncode == 1
    out = done.stdout
    assert "calendar.holidays[0]: to (2027-02-05) is before from (2027-02-11)" in out
    assert "calendar.holidays[1].name" in out
    assert "calendar.holidays[2]: write either date (one day) or from and to (a span), not both" in out
    assert "calendar.holidays[3].too" in out
    assert "calendar.workdays[0].date" in out


def test_config_check_accepts_a_calendar_and_warns_about_a_weekday_make_up_day(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["calendar"] = {"holidays": [{"from": "2027-02-05", "to": "2027-02-11", "name": "春节"}],
                            "workdays": [{"date": "2027-02-14", "name": "春节调休"},
                                         {"date": "2027-02-15", "name": "春节调休"}]}
    config = tmp_path / "school.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    done = relay("config", "check", str(config))

    assert done.returncode == 0, done.stdout
    assert "warning: calendar.workdays[1].date: 2027-02-15 is a Monday" in done.stdout
    assert "calendar.workdays[0]" not in done.stdout
