"""Dependencies: who is calling, which school's directory they act in, and the shard that holds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from relay.api.errors import ApiError
from relay.base import tokens
from relay.base.runtime import Runtime
from relay.base.shards import Shards
from routing.directory import School, Staff

# Where else a request may say its school (a page session's cookie): added by the layers that own them.
SchoolHint = Callable[[Request], str | None]


async def get_shards(request: Request) -> Shards:
    shards: Shards = request.app.state.shards
    return shards


async def get_runtime(request: Request) -> Runtime:
    """The runtime of the shard that holds the caller's school (the only one without a `shards:` map).

    A request that names no school (no token, a forged one) gets the first shard, where it fails its
    sign-in check as it would anywhere: nothing is read for it that belongs to a school."""
    # async: FastAPI runs a plain function dependency on a worker thread, a hop that costs more than this.
    shards: Shards = request.app.state.shards
    if shards.single:
        return shards.default
    return shards.for_school(school_of_request(request, shards)) or shards.default


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ShardsDep = Annotated[Shards, Depends(get_shards)]


def school_of_request(request: Request, shards: Shards) -> str | None:
    """The school a request acts in, from the signed token it carries (header, path or query) or a hint."""
    header = request.headers.get("authorization", "")
    scheme, _, bearer = header.partition(" ")
    signed = [bearer.strip()] if scheme.lower() == "bearer" else []
    signed += [str(request.path_params.get("token") or ""), request.query_params.get("token") or ""]
    for token in filter(None, signed):
        school_id = school_of_token(shards, token)
        if school_id:
            return school_id
    hints: list[SchoolHint] = getattr(request.app.state, "school_hints", [])
    return next(filter(None, (hint(request) for hint in hints)), None)


def school_of_token(shards: Shards, token: str) -> str | None:
    """The school a valid signed token names; a caller token without one: the shard whose directory has them."""
    try:
        claims = tokens.verify(token, shards.default.settings.signing_keys())
    except tokens.TokenError:
        return None
    if isinstance(claims.get("sch"), str):
        return str(claims["sch"])
    subject, kind = claims.get("sub"), claims.get("k")
    if not isinstance(subject, str) or kind not in ("parent", "staff"):
        return None
    for runtime in shards.runtimes.values():
        directories = runtime.directories
        found = (directories.school_of_guardian if kind == "parent" else directories.school_of_staff)(subject)
        if found:
            return found
    return None


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
