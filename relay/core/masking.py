"""A parent's words with the names the directory knows and phone numbers masked: what may leave the school.

Used for the language model's second opinion and the excerpt on a WeCom card, so both follow one rule.
"""

from __future__ import annotations

import re

from relay.base.store import RequestRecord
from routing.directory import School

_PHONE = re.compile(r"(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d{4}){2}|\b\d{3,4}-\d{7,8}\b|\b\d{7,}\b")


def redact(text: str, school: School, record: RequestRecord) -> str:
    """The message without the names the directory knows for this request, nor anything like a phone number."""
    names = set()
    student = school.student(record.student_id)
    if student is not None:
        names.add(student.name)
        names.update(g.name for g in student.guardians)
    names.update(member.name for member in school.staff)
    for name in sorted((n for n in names if n), key=len, reverse=True):
        text = text.replace(name, "某人")
        if len(name) >= 2:
            text = text.replace(name[1:], "某")  # 张小明 → also 小明, as parents write it
    return _PHONE.sub("[号码]", text)
