"""Dependencies: who is calling, and which school's directory they act in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from relay.api.errors import ApiError
from relay.base import tokens
from relay.base.runtime import Runtime
from routing.directory import School, Staff


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain function dependency on a worker thread, a hop that costs more than this.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _caller(request: Request, runtime: Runtime) -> tokens.Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_token", "需要登录 (a bearer token is required)", {"WWW-Authenticate": "Bearer"})
    try:
        return tokens.read_caller(token.strip(), runtime.settings.signing_keys())
    except tokens.TokenError as exc:
        raise ApiError(401, "invalid_token", f"登录已失效 (token rejected: {exc})", {"WWW-Authenticate": "Bearer"}) from exc


@dataclass(frozen=True)
class GuardianCaller:
    id: str
    school: School
    version: int


@dataclass(frozen=True)
class StaffCaller:
    member: Staff
    school: School
    version: int

    @property
    def id(self) -> str:
        return self.member.id


def _school(runtime: Runtime, school_id: str | None) -> tuple[int, School] | None:
    return runtime.directories.school(school_id) if school_id else None


def current_guardian(request: Request, runtime: RuntimeDep) -> GuardianCaller:
    caller = _caller(request, runtime)
    if caller.kind != "parent":
        raise ApiError(403, "parents_only", "仅限家长使用 (this endpoint is for parents)")
    found = _school(runtime, caller.school or runtime.directories.school_of_guardian(caller.id))
    if found is None or found[1].guardian(caller.id) is None:
        raise ApiError(401, "unknown_guardian", "未找到该家长 (the token's guardian is not in the directory)")
    return GuardianCaller(caller.id, found[1], found[0])


def current_staff(request: Request, runtime: RuntimeDep) -> StaffCaller:
    caller = _caller(request, runtime)
    if caller.kind != "staff":
        raise ApiError(403, "staff_only", "仅限学校工作人员 (this endpoint is for staff)")
    found = _school(runtime, caller.school or runtime.directories.school_of_staff(caller.id))
    member = found[1].staff_member(caller.id) if found else None
    if found is None or member is None:
        raise ApiError(401, "unknown_staff", "未找到该工作人员 (the token's staff member is not in the directory)")
    return StaffCaller(member, found[1], found[0])


async def _guardian(request: Request, runtime: RuntimeDep) -> GuardianCaller:
    # On the event loop, like the routes that use it (no Redis but the directory's refresh every few seconds).
    return current_guardian(request, runtime)


CurrentGuardian = Annotated[GuardianCaller, Depends(_guardian)]
StaffOfSchool = Annotated[StaffCaller, Depends(current_staff)]
