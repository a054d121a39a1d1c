"""Checking a roster import, and the school it makes.

Every problem names its sheet, its row (as Excel numbers it) and its column, in Chinese, and
all of them are found in one pass, so an administrator fixes the file once. Nothing here
writes: relay/school/admin.py stages a clean import and publishes it as one new directory version.

What an import replaces: the staff, classes and students of the sheets it has. A sheet left
out keeps the current version's; staff keep their leave and absence (set on the admin pages,
never in the file), and a column left out of a sheet (contacts, 代班人) keeps what the current
version says of people already there. Hours, terms, closures and SLA are never touched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from relay.base import outbound
from relay.school.roster_files import CONTACT_COLUMNS, GUARDIANS, MAX_ROWS, SHEETS, Row, Sheet
from routing.directory import CHANNEL_ADDRESS_FIELD, Role, School
from routing.validation import check_config

ROLE_ALIASES: dict[str, Role] = {
    "教务": Role.academic_affairs, "教务老师": Role.academic_affairs, "教务员": Role.academic_affairs,
    "班主任": Role.homeroom, "校医": Role.nurse, "保健医生": Role.nurse, "保健老师": Role.nurse,
    "安全员": Role.safety_officer, "安全主任": Role.safety_officer, "值班领导": Role.duty_leader,
    "值班": Role.duty_leader, "校长": Role.principal, "副校长": Role.principal, "管理员": Role.admin,
    **{role.value: role for role in Role},
}
RELATIONS = {"妈妈": "mother", "母亲": "mother", "爸爸": "father", "父亲": "father", "爷爷": "grandfather",
             "祖父": "grandfather", "奶奶": "grandmother", "祖母": "grandmother", "外公": "maternal_grandfather",
             "姥爷": "maternal_grandfather", "外婆": "maternal_grandmother", "姥姥": "maternal_grandmother",
             "监护人": "guardian"}
_SPLIT = re.compile(r"[,，、;；/\s]+")
_ID = re.compile(r"^[^\s/?#]{1,64}$")
_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_LANDLINE = re.compile(r"^0\d{9,11}$")
_ABROAD = re.compile(r"^\+(?!86)[1-9]\d{7,14}$")


@dataclass(frozen=True)
class RosterProblem:
    sheet: str  # 学生 / 教职工 / 班级, or 文件
    row: int | None
    column: str | None  # the header as written in the file
    message: str

    def __str__(self) -> str:
        row = f" 第{self.row}行" if self.row else ""
        column = f"「{self.column}」" if self.column else ""
        return f"{self.sheet}{row}{column}：{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckedRoster:
    school: School | None  # the school the import makes, when it has no problem
    problems: list[RosterProblem]
    summary: dict[str, Any] = field(default_factory=dict)


def normalize_phone(text: str) -> str | None:
    """`138 0000 0001`, `+86-13800000001`, `0429-5123456` → one stored shape; None if it is no phone."""
    digits = re.sub(r"[\s\-()（）]", "", text)
    if mobile := _MOBILE.match(digits):
        return "+86" + mobile.group(1)
    if _LANDLINE.match(digits) or _ABROAD.match(digits):
        return digits
    return None


def guardian_id_for(school_id: str, phone: str) -> str:
    """A guardian written without an id: the same phone always gives the same id (siblings share it)."""
    return "g-" + hashlib.sha256(f"{school_id}:{phone}".encode()).hexdigest()[:12]


class _Check:
    def __init__(self, current: School, sheets: dict[str, Sheet], allowed: tuple[outbound.Network, ...]) -> None:
        self.current = current
        self.allowed = allowed
        self.sheets = sheets
        self.problems: list[RosterProblem] = []
        self.rows: dict[str, dict[int, int]] = {}  # sheet kind -> item index -> row number

    def problem(self, sheet: Sheet | str, row: Row | int | None, column: str | None, message: str) -> None:
        title = sheet.title if isinstance(sheet, Sheet) else sheet
        header = sheet.header(column) if isinstance(sheet, Sheet) and column else column
        number = row.number if isinstance(row, Row) else row
        self.problems.append(RosterProblem(title, number, header, message))

    def required(self, sheet: Sheet, row: Row, column: str) -> str | None:
        value = row.get(column)
        if not value:
            self.problem(sheet, row, column, "必填，不能为空")
            return None
        return value

    def ident(self, sheet: Sheet, row: Row, column: str, seen: dict[str, int], what: str) -> str | None:
        value = self.required(sheet, row, column)
        if value is None:
            return None
        if not _ID.match(value):
            self.problem(sheet, row, column, f"{what}「{value}」不能含空格或 / ? #，且不超过 64 个字符")
            return None
        if value in seen:
            self.problem(sheet, row, column, f"{what} {value} 重复（与第{seen[value]}行相同）")
            return None
        seen[value] = row.number
        return value

    def shape(self, sheet: Sheet) -> bool:
        """The sheet has its required columns and some rows; its rows are checked only then."""
        missing = [c for c in SHEETS[sheet.kind][2] if c.required and c.name not in sheet.headers]
        for column in missing:
            self.problem(sheet, sheet.header_row, column.title, "缺少这一列（请使用模板的表头）")
        if sheet.too_long:
            self.problem(sheet, None, None, f"超过 {MAX_ROWS} 行，请检查是否选错了文件")
        if not sheet.rows and not missing:
            self.problem(sheet, None, None, "没有数据行（不想改这张表时，请不要上传它）")
        if missing or sheet.too_long:
            return False
        sheet.rows = [self.bounded(sheet, row) for row in sheet.rows]
        return True

    def bounded(self, sheet: Sheet, row: Row) -> Row:
        """Every over-long cell is a problem; the rest of the checks see its beginning only, so that no
        message quotes a whole over-long cell back."""
        values = dict(row.values)
        for column in SHEETS[sheet.kind][2]:
            value = values.get(column.name, "")
            if len(value) > column.max_length:
                self.problem(sheet, row, column.name, f"太长了：最多 {column.max_length} 个字符，这里有 {len(value)} 个")
                values[column.name] = value[:column.max_length]
        return Row(row.number, values)

    # Staff --------------------------------------------------------------------------------------

    def staff(self) -> list[dict[str, Any]]:
        sheet = self.sheets.get("staff")
        if sheet is None or not self.shape(sheet):
            return [s.model_dump(mode="json") for s in self.current.staff]
        old = {s.id: s for s in self.current.staff}
        with_contacts = any(c in sheet.headers for c in CONTACT_COLUMNS)
        seen: dict[str, int] = {}
        staff: list[dict[str, Any]] = []
        backups: list[tuple[dict[str, Any], Row]] = []
        for row in sheet.rows:
            staff_id = self.ident(sheet, row, "staff_id", seen, "工号")
            name = self.required(sheet, row, "name")
            roles = self.roles(sheet, row)
            contacts = self.contacts(sheet, row, old.get(staff_id or ""))
            if staff_id is None or name is None:
                continue
            before = old.get(staff_id)
            member: dict[str, Any] = before.model_dump(mode="json") if before else {"id": staff_id}
            member.update(name=name, roles=roles)
            if with_contacts or before is None:
                member["contacts"] = contacts
            if "backup" in sheet.headers:
                member["backup"] = None
                backups.append((member, row))
            self.rows.setdefault("staff", {})[len(staff)] = row.number
            staff.append(member)
        for member, row in backups:  # a backup may be listed below the person they stand in for
            if row.get("backup"):
                member["backup"] = self.someone(sheet, row, "backup", row.get("backup"), staff)
        if not any({"admin", "principal"} & set(m["roles"]) for m in staff):
            self.problem(sheet, None, "roles", "导入后没有「管理员」或「校长」，将无人能管理本校目录")
        return staff

    def roles(self, sheet: Sheet, row: Row) -> list[str]:
        roles: list[str] = []
        for word in _SPLIT.split(row.get("roles")):
            if not word:
                continue
            role = ROLE_ALIASES.get(word) or ROLE_ALIASES.get(word.lower())
            if role is None:
                self.problem(sheet, row, "roles", f"不认识的角色「{word}」（可用：教务、班主任、校医、安全员、值班领导、校长、管理员）")
            elif role.value not in roles:
                roles.append(role.value)
        if not row.get("roles"):
            self.problem(sheet, row, "roles", "必填，不能为空")
        return roles

    def contacts(self, sheet: Sheet, row: Row, before: Any) -> list[dict[str, Any]]:
        contacts = []
        for column, channel in CONTACT_COLUMNS.items():
            value = row.get(column)
            if not value:
                continue
            if column == "phone":
                phone = normalize_phone(value)
                if phone is None:
                    self.problem(sheet, row, column, f"电话号码格式不对：{value}（应为 11 位手机号，如 13800000000）")
                    continue
                value = phone
            elif column in ("dingtalk", "webhook") and (refused := self.address_problem(value)):
                self.problem(sheet, row, column, f"地址不能使用：{refused}")
                continue
            address = CHANNEL_ADDRESS_FIELD[channel]
            kept = next((c for c in (before.contacts if before else ()) if c.channel is channel
                         and getattr(c, address) == value), None)  # keeps what the file cannot say (secret_env)
            contacts.append(kept.model_dump(mode="json", exclude_none=True) if kept else
                            {"channel": channel.value, address: value})
        return contacts

    def address_problem(self, url: str) -> str | None:
        """https:// (http:// only to RELAY_WEBHOOK_ALLOW_PRIVATE), never a link-local or metadata address;
        a URL the current directory already has is not resolved again."""
        known = any(c.url == url for member in self.current.staff for c in member.contacts)
        return outbound.check_url(url, self.allowed, None if known else outbound.resolve)

    def someone(self, sheet: Sheet, row: Row, column: str, who: str, staff: list[dict[str, Any]]) -> str | None:
        """A staff member written as an id or a name."""
        if any(m["id"] == who for m in staff):
            return who
        named = [m["id"] for m in staff if m["name"] == who]
        if len(named) == 1:
            return named[0]
        if named:
            self.problem(sheet, row, column, f"有 {len(named)} 位教职工叫「{who}」，请写工号")
        else:
            self.problem(sheet, row, column, f"未找到教职工「{who}」（请写工号或姓名，且此人在教职工表中）")
        return None

    # Classes ------------------------------------------------------------------------------------

    def classes(self, staff: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sheet = self.sheets.get("classes")
        if sheet is None or not self.shape(sheet):
            return [c.model_dump(mode="json") for c in self.current.classes]
        seen: dict[str, int] = {}
        classes: list[dict[str, Any]] = []
        for row in sheet.rows:
            class_id = self.ident(sheet, row, "class_id", seen, "班级编号")
            name = self.required(sheet, row, "name")
            teacher = row.get("academic_affairs")
            academic_affairs = None
            if not teacher:
                self.problem(sheet, row, "academic_affairs", "这个班没有教务老师：每个班都要有一位教务老师负责家长的请求")
            elif (academic_affairs := self.someone(sheet, row, "academic_affairs", teacher, staff)) is not None:
                member = next(m for m in staff if m["id"] == academic_affairs)
                if Role.academic_affairs.value not in member["roles"]:
                    self.problem(sheet, row, "academic_affairs", f"{member['name']}（{academic_affairs}）在教职工表中没有「教务」角色")
                    academic_affairs = None
            homeroom = self.someone(sheet, row, "homeroom", row.get("homeroom"), staff) if row.get("homeroom") else None
            if class_id and name:  # kept even without a teacher, so that its students are not reported as well
                self.rows.setdefault("classes", {})[len(classes)] = row.number
                classes.append({"id": class_id, "name": name, "academic_affairs": academic_affairs, "homeroom": homeroom})
        return classes

    # Students -----------------------------------------------------------------------------------

    def students(self, classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sheet = self.sheets.get("students")
        if sheet is None or not self.shape(sheet):
            return [s.model_dump(mode="json") for s in self.current.students]
        by_name: dict[str, list[str]] = {}
        for c in classes:
            by_name.setdefault(c["name"], []).append(c["id"])
        class_ids = {c["id"] for c in classes}
        known_phones = {normalize_phone(g.phone) or g.phone: g.id for s in self.current.students
                        for g in s.guardians if g.phone}
        phones: dict[str, tuple[str, int]] = {}  # guardian id written in the file -> (phone, row)
        seen: dict[str, int] = {}
        students: list[dict[str, Any]] = []
        for row in sheet.rows:
            student_id = self.ident(sheet, row, "student_id", seen, "学号")
            name = self.required(sheet, row, "name")
            class_id = self.school_class(sheet, row, class_ids, by_name)
            guardians = [g for n in range(1, GUARDIANS + 1)
                         if (g := self.guardian(sheet, row, n, known_phones, phones)) is not None]
            if student_id and name and class_id:
                self.rows.setdefault("students", {})[len(students)] = row.number
                students.append({"id": student_id, "name": name, "class_id": class_id, "guardians": guardians})
        return students

    def school_class(self, sheet: Sheet, row: Row, class_ids: set[str], by_name: dict[str, list[str]]) -> str | None:
        """The class written as an id or a name."""
        written = row.get("class")
        named = by_name.get(written, [])
        if written in class_ids:
            return written
        if len(named) == 1:
            return named[0]
        if not written:
            self.problem(sheet, row, "class", "必填，不能为空")
        elif named:
            self.problem(sheet, row, "class", f"有 {len(named)} 个班叫「{written}」，请写班级编号")
        else:
            self.problem(sheet, row, "class", f"未知班级「{written}」（班级表中没有这个编号或名称）")
        return None

    def guardian(self, sheet: Sheet, row: Row, n: int, known_phones: dict[str, str],
                 phones: dict[str, tuple[str, int]]) -> dict[str, Any] | None:
        name, written_phone = row.get(f"guardian{n}_name"), row.get(f"guardian{n}_phone")
        relation, guardian_id = row.get(f"guardian{n}_relation"), row.get(f"guardian{n}_id")
        if not (name or written_phone or guardian_id):
            return None
        phone = normalize_phone(written_phone) if written_phone else None
        ok = True
        if written_phone and phone is None:
            self.problem(sheet, row, f"guardian{n}_phone", f"电话号码格式不对：{written_phone}（应为 11 位手机号，如 13800000000）")
            ok = False
        if not name:
            self.problem(sheet, row, f"guardian{n}_name", "填写了家长信息，但家长姓名为空")
            ok = False
        if guardian_id and not _ID.match(guardian_id):
            self.problem(sheet, row, f"guardian{n}_id", f"家长编号「{guardian_id}」不能含空格或 / ? #")
            ok = False
        elif guardian_id and phone:
            first = phones.setdefault(guardian_id, (phone, row.number))
            if first[0] != phone:
                self.problem(sheet, row, f"guardian{n}_phone", f"同一位家长（编号 {guardian_id}）有两个不同的电话："
                                                               f"第{first[1]}行是 {first[0]}，这里是 {phone}")
                ok = False
        elif not guardian_id and not phone and not written_phone:
            self.problem(sheet, row, f"guardian{n}_phone", "家长需要电话（或家长编号），家长才能用手机登录")
            ok = False
        if not ok:
            return None
        if not guardian_id:
            guardian_id = known_phones.get(str(phone)) or guardian_id_for(self.current.id, str(phone))
        return {"id": guardian_id, "name": name, "phone": phone, "relation": RELATIONS.get(relation, relation or None)}

    # The whole ----------------------------------------------------------------------------------

    def school(self) -> School | None:
        staff = self.staff()
        classes = self.classes(staff)
        students = self.students(classes)
        if self.problems:
            return None
        document = self.current.model_dump(mode="json")
        document.update(staff=staff, classes=classes, students=students)
        directory, problems = check_config({"schools": [document]})
        for problem in problems:  # what the sheets cannot see alone, e.g. an SLA step naming a removed person
            self.problems.append(self.located(problem.where, problem.message))
        return directory.schools[0] if directory is not None and not self.problems else None

    def located(self, where: str, message: str) -> RosterProblem:
        match = re.match(r"^schools\[0\]\.(staff|classes|students)\[(\d+)\]\.?(.*)$", where)
        words = _in_chinese(message)
        if match is None:
            return RosterProblem("设置", None, where.removeprefix("schools[0]."), words)
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        sheet = self.sheets.get(kind)
        row = self.rows.get(kind, {}).get(index)
        if sheet is None or row is None:
            return RosterProblem(SHEETS[kind][0], None, f"当前目录 {kind}[{index}].{rest}", words)
        return RosterProblem(sheet.title, row, rest or None, words)


_MESSAGES = [
    (re.compile(r"unknown staff '(.+)'"), "未找到教职工 {0}"),
    (re.compile(r"unknown class '(.+)'"), "未知班级 {0}"),
    (re.compile(r"duplicate \w+ id '(.+)'"), "编号 {0} 重复"),
    (re.compile(r"'(.+)' does not have the academic_affairs role"), "{0} 没有「教务」角色"),
    (re.compile(r"class '(.+)' has no academic-affairs teacher"), "班级 {0} 没有教务老师"),
    (re.compile(r"guardian '(.+)' has two different phones"), "家长 {0} 有两个不同的电话"),
]


def _in_chinese(message: str) -> str:
    for pattern, words in _MESSAGES:
        if found := pattern.search(message):
            return words.format(*found.groups())
    return message


def _changes(before: list[str], after: list[str]) -> dict[str, int]:
    old, new = set(before), set(after)
    return {"total": len(after), "added": len(new - old), "removed": len(old - new)}


def check_roster(current: School, sheets: dict[str, Sheet],
                 allowed: tuple[outbound.Network, ...] = ()) -> CheckedRoster:
    """Check the sheets against the current school; the new school when the whole file is sound.
    `allowed`: the private ranges contact URLs may reach (RELAY_WEBHOOK_ALLOW_PRIVATE)."""
    if not sheets:
        problem = RosterProblem("文件", None, None, "没有找到「学生」「教职工」或「班级」工作表（请使用模板）")
        return CheckedRoster(None, [problem])
    check = _Check(current, sheets, allowed)
    school = check.school()
    summary: dict[str, Any] = {
        "sheets": [SHEETS[k][0] for k in SHEETS if k in sheets],
        "kept": [SHEETS[k][0] for k in SHEETS if k not in sheets],
    }
    if school is not None:
        summary |= {
            "students": _changes([s.id for s in current.students], [s.id for s in school.students]),
            "staff": _changes([s.id for s in current.staff], [s.id for s in school.staff]),
            "classes": _changes([c.id for c in current.classes], [c.id for c in school.classes]),
        }
    return CheckedRoster(school, check.problems, summary)
