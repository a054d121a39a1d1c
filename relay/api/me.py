"""`GET /v1/me`: the signed-in parent and the children they may write about (the form's child picker)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from relay.api.deps import CurrentGuardian
from relay.api.errors import documented
from routing.directory import School


def _class_name(school: School, class_id: str) -> str:
    found = school.school_class(class_id)
    return found.name if found else class_id


router = APIRouter(prefix="/v1", tags=["requests"], responses=documented(401, 403, 503))


@router.get("/me")
async def me(guardian: CurrentGuardian) -> dict[str, Any]:
    """The signed-in parent and the children they may write about (for the form's child picker)."""
    school = guardian.school
    found = school.guardian(guardian.id)
    children = []
    for student_id in school.children_of(guardian.id):
        student = school.student(student_id)
        if student is not None:
            children.append({"id": student.id, "name": student.name, "class_name": _class_name(school, student.class_id)})
    return {"guardian": {"id": guardian.id, "name": found.name if found else ""},
            "school": {"id": school.id, "name": school.name}, "children": children}
