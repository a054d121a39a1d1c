"""Roster files: one Excel workbook (sheets 学生 / 教职工 / 班级) or one CSV file per sheet.

Reading turns a file into rows of plain strings under known column names, with the row number
the administrator sees in Excel; relay/school/roster.py checks them. Headers are Chinese, English
aliases are accepted; columns are found by header, in any order; other columns are ignored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from routing.directory import CHANNEL_ADDRESS_FIELD, NAME_CHARS, Channel, School

MAX_ROWS = 20000  # a school is a few thousand people; more is a wrong file, not a big school
GUARDIANS = 3  # guardian columns per student: 家长1…家长3
# An xlsx is a zip: 412 KB can unpack to 400 MiB (one cell of "AAAA…"), which openpyxl would hold in
# memory (2-3 times over). The example school's 1,200 students unpack to 0.9 MB, 20,000 rows to about 15 MB.
MAX_UNPACKED_BYTES = 24 * 1024 * 1024


# The longest a cell may be, in characters: an id and a name as the directory allows them, a phone as
# people write it.
ID_CHARS = 64
PHONE_CHARS = 20
WORD_CHARS = 20  # a relation (妈妈, 外祖母)
ROLES_CHARS = 100  # every role, written out: 教务、班主任、校医、安全员、值班领导、校长、管理员
URL_CHARS = 1000


@dataclass(frozen=True)
class Column:
    name: str  # the field, in English
    title: str  # the header in the template
    aliases: tuple[str, ...] = ()
    required: bool = False
    max_length: int = ID_CHARS  # ids, and columns that hold an id or a name


def _guardian_columns() -> list[Column]:
    columns = []
    for n in range(1, GUARDIANS + 1):
        columns += [
            Column(f"guardian{n}_name", f"家长{n}姓名", (f"guardian{n}_name",), max_length=NAME_CHARS),
            Column(f"guardian{n}_phone", f"家长{n}电话", (f"家长{n}手机", f"guardian{n}_phone"), max_length=PHONE_CHARS),
            Column(f"guardian{n}_relation", f"家长{n}关系", (f"guardian{n}_relation",), max_length=WORD_CHARS),
            Column(f"guardian{n}_id", f"家长{n}编号", (f"guardian{n}_id",)),
        ]
    return columns


# Sheet name in the workbook, aliases, and its columns in template order.
SHEETS: dict[str, tuple[str, tuple[str, ...], list[Column]]] = {
    "students": ("学生", ("students", "student", "学生名单"), [
        Column("student_id", "学号", ("student_id", "id", "学生编号"), True),
        Column("name", "姓名", ("name", "学生姓名"), True, NAME_CHARS),
        Column("class", "班级", ("class", "class_id", "班级编号", "班级名称"), True),
        *_guardian_columns(),
    ]),
    "staff": ("教职工", ("staff", "教师", "老师"), [
        Column("staff_id", "工号", ("staff_id", "id", "编号"), True),
        Column("name", "姓名", ("name",), True, NAME_CHARS),
        Column("roles", "角色", ("roles", "role"), True, ROLES_CHARS),
        Column("wecom", "企业微信", ("wecom", "企业微信账号", "wecom_userid")),
        Column("dingtalk", "钉钉机器人", ("dingtalk", "钉钉"), max_length=URL_CHARS),
        Column("webhook", "Webhook", ("webhook",), max_length=URL_CHARS),
        Column("phone", "手机", ("phone", "sms", "电话", "手机号"), max_length=PHONE_CHARS),
        Column("backup", "代班人", ("backup", "备用人", "代班")),
    ]),
    "classes": ("班级", ("classes", "class", "班级名单"), [
        Column("class_id", "班级编号", ("class_id", "id"), True),
        Column("name", "班级名称", ("name", "班级"), True, NAME_CHARS),
        Column("academic_affairs", "教务老师", ("academic_affairs", "教务"), True),
        Column("homeroom", "班主任", ("homeroom",)),
    ]),
}
# Contact columns in the order a staff member's contacts are tried (SMS last: it costs money).
CONTACT_COLUMNS: dict[str, Channel] = {"wecom": Channel.wecom, "dingtalk": Channel.dingtalk,
                                       "webhook": Channel.webhook, "phone": Channel.sms}


@dataclass(frozen=True)
class Row:
    number: int  # as Excel numbers it: the header is row 1
    values: dict[str, str]

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class Sheet:
    kind: str  # students | staff | classes
    title: str  # as written in the file
    headers: dict[str, str] = field(default_factory=dict)  # column name -> header as written
    rows: list[Row] = field(default_factory=list)
    header_row: int = 1
    too_long: bool = False

    def header(self, name: str) -> str:
        return self.headers.get(name) or next((c.title for c in SHEETS[self.kind][2] if c.name == name), name)


class RosterFileError(Exception):
    """The file cannot be read at all (not an xlsx, not text)."""


def _key(text: str) -> str:
    return re.sub(r"[\s_*＊()（）]", "", unicodedata.normalize("NFKC", text)).lower()


def sheet_kind(name: str) -> str | None:
    wanted = _key(name.rsplit(".", 1)[0] if name.lower().endswith(".csv") else name)
    for kind, (title, aliases, _) in SHEETS.items():
        if wanted in {_key(title), *(_key(a) for a in aliases)}:
            return kind
    return None


# A cell beginning with one of these is a formula to a spreadsheet (OWASP "CSV injection"): an export
# writes such a value after a single quote, and reading takes the quote off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: str) -> str:
    """A value as an export writes it: never a live formula, whoever typed it into the directory."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> str:
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        value = value[1:]  # what `neutralised` wrote: the download-edit-upload loop gives back what it got
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number typed as a number: 13800000000.0
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return unicodedata.normalize("NFC", str(value)).strip()


def _sheet(kind: str, title: str, rows: Any) -> Sheet:
    sheet = Sheet(kind, title)
    lookup = {_key(a): c.name for c in SHEETS[kind][2] for a in (c.title, c.name, *c.aliases)}
    positions: dict[int, str] = {}
    for number, raw in enumerate(rows, 1):
        cells = [_cell(v) for v in raw]
        if not any(cells):
            continue
        if not positions and not sheet.headers:
            for index, header in enumerate(cells):
                name = lookup.get(_key(header)) if header else None
                if name and name not in sheet.headers:
                    positions[index] = name
                    sheet.headers[name] = header
            sheet.header_row = number
            continue
        if len(sheet.rows) >= MAX_ROWS:
            sheet.too_long = True
            break
        values = {name: cells[i] for i, name in positions.items() if i < len(cells) and cells[i]}
        sheet.rows.append(Row(number, values))
    return sheet


def check_unpacked_size(content: bytes, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse a workbook that unpacks to more than `limit` bytes, before openpyxl unpacks anything.

    The sizes a zip declares are checked first (cheap); then every member is inflated in chunks and
    counted, since a crafted zip may declare less than it holds. Nothing is kept.
    """
    refusal = RosterFileError(f"Excel 文件解压后超过 {limit // (1024 * 1024)} MB 的上限，无法读取"
                              f"（请检查文件，或分成几个文件上传） (the workbook unpacks to more than {limit} bytes)")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            if sum(member.file_size for member in members) > limit:
                raise refusal
            unpacked = 0
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(1024 * 1024):
                        unpacked += len(chunk)
                        if unpacked > limit:
                            raise refusal
    # zipfile's ways of saying "not a readable zip": corrupt, encrypted, an unknown compression.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError,
            OSError, EOFError) as exc:
        raise RosterFileError("无法读取 Excel 文件（请上传 .xlsx 格式）") from exc


def read_workbook(content: bytes) -> dict[str, Sheet]:
    from openpyxl import load_workbook  # only administrators need it: not loaded by every process

    check_unpacked_size(content)
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML and key errors alike for a file that is not xlsx
        raise RosterFileError("无法读取 Excel 文件（请上传 .xlsx 格式）") from exc
    try:
        sheets = {}
        for worksheet in book.worksheets:
            kind = sheet_kind(worksheet.title)
            if kind and kind not in sheets:
                sheets[kind] = _sheet(kind, worksheet.title, worksheet.iter_rows(values_only=True))
        return sheets
    except Exception as exc:  # a read-only workbook parses its sheets lazily: a broken one fails here
        raise RosterFileError("Excel 文件已损坏，无法读取（请重新保存为 .xlsx）") from exc
    finally:
        book.close()


def read_csv(kind: str, name: str, content: bytes) -> Sheet:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in Chinese saves CSV as GBK unless told otherwise
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RosterFileError(f"{name}：无法识别文件编码（请另存为 UTF-8 CSV）")
    try:
        return _sheet(kind, name, csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise RosterFileError(f"{name}：CSV 格式错误（{exc}）") from exc


def read_upload(files: list[tuple[str, str, bytes]]) -> dict[str, Sheet]:
    """(form field, file name, content) → sheets. An .xlsx holds every sheet; a CSV is named by its field or file."""
    sheets: dict[str, Sheet] = {}
    for field_name, file_name, content in files:
        if not content:
            continue
        if content[:2] == b"PK" or file_name.lower().endswith((".xlsx", ".xlsm")):
            for kind, sheet in read_workbook(content).items():
                sheets.setdefault(kind, sheet)
            continue
        csv_kind = sheet_kind(field_name) or sheet_kind(file_name)
        if csv_kind is None:
            raise RosterFileError(f"{file_name}：不知道这是哪张表（文件名请用 学生.csv、教职工.csv 或 班级.csv）")
        sheets[csv_kind] = read_csv(csv_kind, SHEETS[csv_kind][0], content)
    return sheets


# Writing: templates and the current roster ------------------------------------------------------

ROLE_WORDS = {"academic_affairs": "教务", "homeroom": "班主任", "nurse": "校医", "safety_officer": "安全员",
              "duty_leader": "值班领导", "principal": "校长", "admin": "管理员"}
RELATION_WORDS = {"mother": "妈妈", "father": "爸爸", "grandfather": "爷爷", "grandmother": "奶奶",
                  "maternal_grandfather": "外公", "maternal_grandmother": "外婆", "guardian": "监护人"}

_EXAMPLES: dict[str, list[dict[str, str]]] = {
    "students": [{"student_id": "s-1001", "name": "张小明", "class": "g3c2", "guardian1_name": "张妈妈",
                  "guardian1_phone": "13800000001", "guardian1_relation": "妈妈", "guardian2_name": "张爸爸",
                  "guardian2_phone": "13800000002", "guardian2_relation": "爸爸"}],
    "staff": [
        {"staff_id": "t-wang", "name": "王老师", "roles": "教务", "wecom": "WangLi", "phone": "13900000001",
         "backup": "t-zhao"},
        {"staff_id": "t-zhao", "name": "赵老师", "roles": "教务", "wecom": "ZhaoMin", "backup": "t-wang"},
        {"staff_id": "t-li", "name": "李老师", "roles": "班主任", "wecom": "LiNa"},
        {"staff_id": "t-ma", "name": "马校长", "roles": "校长、管理员", "phone": "13900000009"},
    ],
    "classes": [{"class_id": "g3c2", "name": "三年级2班", "academic_affairs": "t-wang", "homeroom": "t-li"}],
}

INSTRUCTIONS = [
    "每张表第一行是表头；列的顺序随意，不认识的列会被忽略。Headers in Chinese or English (student_id, name, ...).",
    "学生表：学号、姓名、班级（班级编号或班级名称）必填；每个学生最多 3 位家长，电话写 11 位手机号。",
    "家长编号可不填：同一手机号视为同一位家长（兄弟姐妹共用），已有家长保留原编号。",
    "教职工表：角色可写多个，用顿号或逗号分开：教务、班主任、校医、安全员、值班领导、校长、管理员。",
    "联系方式按 企业微信 → 钉钉机器人 → Webhook → 手机 的顺序尝试；不含联系方式列时保留当前的联系方式。",
    "班级表：教务老师、班主任可写工号或姓名；每个班必须有一位教务老师。",
    "只上传某一张表时，其余两张表保持当前内容不变；请假记录不会被导入覆盖。",
    "导入先检查，全部无误后才能应用；应用后可在“版本”中恢复到之前的版本。",
]


def _rows_of(school: School | None, kind: str) -> list[list[str]]:
    """The cells of a sheet's rows (the template's: its examples), in column order, as an export writes them."""
    records = _records(school, kind) if school else _EXAMPLES[kind]
    return [[neutralised(row.get(c.name, "")) for c in SHEETS[kind][2]] for row in records]


def as_written(phone: str | None) -> str:
    """A mainland mobile as people write it (13800000000): no "+" that a spreadsheet would take for a
    formula, and the import reads it back to the same +86 number."""
    if phone and phone.startswith("+86") and len(phone) == 14 and phone[3] == "1":
        return phone[3:]
    return phone or ""


def _records(school: School, kind: str) -> list[dict[str, str]]:
    if kind == "staff":
        out = []
        for member in school.staff:
            row = {"staff_id": member.id, "name": member.name,
                   "roles": "、".join(ROLE_WORDS.get(r.value, r.value) for r in member.roles),
                   "backup": member.backup or ""}
            for column, channel in CONTACT_COLUMNS.items():
                contact = next((c for c in member.contacts if c.channel is channel), None)
                address = (getattr(contact, CHANNEL_ADDRESS_FIELD[channel]) or "") if contact else ""
                row[column] = as_written(address) if channel is Channel.sms else address
            out.append(row)
        return out
    if kind == "classes":
        return [{"class_id": c.id, "name": c.name, "academic_affairs": c.academic_affairs, "homeroom": c.homeroom or ""}
                for c in school.classes]
    rows = []
    for student in school.students:
        row = {"student_id": student.id, "name": student.name, "class": student.class_id}
        for n, guardian in enumerate(student.guardians[:GUARDIANS], 1):
            row.update({f"guardian{n}_name": guardian.name, f"guardian{n}_phone": as_written(guardian.phone),
                        f"guardian{n}_relation": RELATION_WORDS.get(guardian.relation or "", guardian.relation or ""),
                        f"guardian{n}_id": guardian.id})
        rows.append(row)
    return rows


def workbook(school: School | None) -> bytes:
    """The template (school None: headers and one example row per sheet) or the school's current roster."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for kind, (title, _, columns) in SHEETS.items():
        sheet = book.create_sheet(title)
        sheet.append([c.title for c in columns])
        for cells in _rows_of(school, kind):
            sheet.append(cells)
        for index, column in enumerate(columns):
            sheet.column_dimensions[sheet.cell(1, index + 1).column_letter].width = max(10, 2 * len(column.title) + 4)
    notes = book.create_sheet("说明")
    for line in INSTRUCTIONS:
        notes.append([line])
    notes.column_dimensions["A"].width = 110
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_file(kind: str, school: School | None) -> bytes:
    """One sheet as CSV with a BOM, so that Excel opens the Chinese headers correctly."""
    columns = SHEETS[kind][2]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.title for c in columns])
    writer.writerows(_rows_of(school, kind))
    return out.getvalue().encode("utf-8-sig")
