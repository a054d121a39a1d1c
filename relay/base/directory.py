"""School directories at run time: versioned snapshots in Redis.

The YAML is how a directory is written and exchanged; `publish` turns it into a new
version per school, and every process reads directories only through `Directories`,
which notices a new version within a second, without a restart. A request records
the version it was planned against.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from relay.base import keys, outbound
from relay.base.settings import get_settings
from routing.directory import Directory, School
from routing.validation import Problem, check_config

REFRESH_SECONDS = 1.0


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_yaml(path: str | Path) -> Directory:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc}")]) from exc
    directory, problems = check_config(raw)
    if directory is None:
        raise ConfigError(problems)
    return directory


def _digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


# How many versions of a school are kept for restoring; older ones are deleted as new ones arrive.
KEEP_VERSIONS = 50


@dataclass(frozen=True)
class Published:
    version: int
    school: School
    changed: bool  # False: the content equalled the current version, which stays current
    previous: int | None


def check_school(school: School) -> list[Problem]:
    """`relay config check`'s shapes and references, on one school as a whole directory."""
    _, problems = check_config({"schools": [school.model_dump(mode="json")]})
    return problems


def _current(connection: Any, school_id: str) -> tuple[int, str, School] | None:
    current = connection.get(keys.directory_current(school_id))
    stored = connection.get(keys.directory_version(school_id, int(current))) if current is not None else None
    if current is None or stored is None:
        return None
    data = json.loads(stored)
    return int(current), data["digest"], School.model_validate_json(data["school"])


def publish_school(connection: redis.Redis, school_id: str, change: Callable[[School | None], School],
                   by: str | None = None, note: str | None = None,
                   allowed: tuple[outbound.Network, ...] | None = None) -> Published:
    """Make `change(current school)` the school's current version in one switch, checked first
    (shapes and references, and the addresses of contact URLs: relay/base/outbound.py).

    Runs in a WATCH / MULTI / EXEC loop like a request's state change: when someone else publishes
    meanwhile, `change` runs again on their version, so no edit is lost and nobody's settings are
    overwritten by a stale copy. `change` raises ConfigError to refuse; nothing is written then.
    `allowed`: the private ranges contact URLs may reach (default: this process's RELAY_WEBHOOK_ALLOW_PRIVATE).
    """
    allowed = get_settings().allowed_private() if allowed is None else allowed
    current_key, seq_key = keys.directory_current(school_id), keys.directory_seq(school_id)
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(current_key, seq_key)
                current = _current(pipe, school_id)
                school = change(current[2] if current else None)
                if school.id != school_id:
                    raise ConfigError([Problem("id", f"the school id must stay {school_id!r}")])
                # Contact URLs new in this version are resolved (outside a transaction's hot path: rare and few).
                problems = check_school(school) or outbound.contact_problems(
                    school, allowed, known=current[2] if current else None)
                if problems:
                    raise ConfigError(problems)
                document = school.model_dump_json()
                digest = _digest(document)
                if current is not None and current[1] == digest:
                    pipe.unwatch()
                    return Published(current[0], current[2], False, current[0])
                version = max(int(pipe.get(seq_key) or 0), current[0] if current else 0) + 1
                at = time.time()
                snapshot = {"version": version, "digest": digest, "published_at": at, "by": by, "note": note,
                            "school": document}
                about = {"version": version, "published_at": at, "by": by, "note": note,
                         "students": len(school.students), "staff": len(school.staff), "classes": len(school.classes)}
                pipe.multi()
                pipe.set(keys.directory_version(school_id, version), json.dumps(snapshot, ensure_ascii=False))
                pipe.set(seq_key, version)
                pipe.set(current_key, version)  # the switch: readers see the old version or the new, never a mix
                pipe.sadd(keys.SCHOOLS, school_id)
                pipe.zadd(keys.directory_versions(school_id), {json.dumps(about, ensure_ascii=False): version})
                if version > KEEP_VERSIONS:
                    pipe.zremrangebyscore(keys.directory_versions(school_id), 0, version - KEEP_VERSIONS)
                    pipe.delete(keys.directory_version(school_id, version - KEEP_VERSIONS))
                pipe.execute()
                return Published(version, school, True, current[0] if current else None)
            except redis.WatchError:
                continue


def publish(connection: redis.Redis, directory: Directory, by: str | None = None,
            note: str | None = None, allowed: tuple[outbound.Network, ...] | None = None) -> dict[str, int]:
    """Make each school's directory the current version; an unchanged school keeps its version."""
    return {school.id: publish_school(connection, school.id, as_written(school), by, note, allowed).version
            for school in directory.schools}


def as_written(school: School) -> Callable[[School | None], School]:
    """The change that makes `school` current, whatever the current version holds."""
    return lambda _: school


def snapshot(connection: redis.Redis, school_id: str, version: int) -> School | None:
    stored = connection.get(keys.directory_version(school_id, version))
    return School.model_validate_json(json.loads(stored)["school"]) if stored is not None else None


def current_version(connection: redis.Redis, school_id: str) -> tuple[int, School] | None:
    """The current version read from Redis itself (not a process's cache), for administration."""
    found = _current(connection, school_id)
    return (found[0], found[2]) if found else None


def restore(connection: redis.Redis, school_id: str, version: int, by: str | None = None) -> Published:
    """Publish what `version` held as a new version (numbers only grow, so every process notices)."""
    old = snapshot(connection, school_id, version)
    if old is None:
        raise ConfigError([Problem(f"version {version}", "no such version (or no longer kept)")])
    return publish_school(connection, school_id, lambda _: old, by, f"restore:{version}")


def versions(connection: redis.Redis, school_id: str, limit: int = KEEP_VERSIONS) -> list[dict[str, Any]]:
    """The kept versions, newest first: version, published_at, by, note, and the roster's size."""
    members: list[Any] = connection.zrevrange(keys.directory_versions(school_id), 0, limit - 1)
    listed = [json.loads(m) for m in members]
    found = _current(connection, school_id)
    if found is not None and not any(v["version"] == found[0] for v in listed):
        # Published before versions were listed: still shown, so it can be restored.
        school = found[2]
        listed.insert(0, {"version": found[0], "published_at": None, "by": None, "note": None,
                          "students": len(school.students), "staff": len(school.staff), "classes": len(school.classes)})
    current = found[0] if found else None
    for item in listed:
        item["current"] = item["version"] == current
    return listed


def export_yaml(schools: list[School]) -> str:
    """Schools as a configuration file that `relay config apply` reads back to the same content.

    A calendar the schools share is written once, as the top-level `calendar:` of the contract."""
    written = [school.model_dump(mode="json", exclude_none=True) for school in schools]
    calendars = [school.calendar for school in schools]
    shared = calendars[0] if calendars and all(c == calendars[0] for c in calendars) else None
    document: dict[str, Any] = {}
    if shared is not None and (shared.holidays or shared.workdays):
        document["calendar"] = shared.model_dump(mode="json")
    for school in written:
        if shared is not None:
            del school["calendar"]
    document["schools"] = written
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=200)


class Directories:
    """Each process's view of the current directories; safe to share between threads."""

    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection
        self._lock = threading.Lock()
        self._schools: dict[str, tuple[int, School]] = {}
        self._checked_at = 0.0
        self._guardians: dict[str, str] = {}
        self._staff: dict[str, str] = {}

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < REFRESH_SECONDS:
            return
        with self._lock:
            if not force and now - self._checked_at < REFRESH_SECONDS:
                return
            school_ids = sorted(s.decode() if isinstance(s, bytes) else str(s) for s in self._redis.smembers(keys.SCHOOLS))
            currents = self._redis.mget([keys.directory_current(s) for s in school_ids]) if school_ids else []
            schools = dict(self._schools)
            changed = set(schools) - set(school_ids)
            for school_id in changed:
                del schools[school_id]
            for school_id, current in zip(school_ids, currents, strict=True):
                if current is None:
                    continue
                version = int(current)
                if school_id in schools and schools[school_id][0] == version:
                    continue
                snapshot = self._redis.get(keys.directory_version(school_id, version))
                if snapshot is None:
                    continue
                data: dict[str, Any] = json.loads(snapshot)
                schools[school_id] = (version, School.model_validate_json(data["school"]))
                changed.add(school_id)
            if changed:
                self._schools = schools
                self._guardians, self._staff = {}, {}
                for school_id, (_, school) in schools.items():
                    for student in school.students:
                        for guardian in student.guardians:
                            self._guardians.setdefault(guardian.id, school_id)
                    for member in school.staff:
                        self._staff.setdefault(member.id, school_id)
            self._checked_at = now

    def school(self, school_id: str) -> tuple[int, School] | None:
        self._refresh()
        return self._schools.get(school_id)

    def school_ids(self) -> list[str]:
        self._refresh()
        return sorted(self._schools)

    def school_of_guardian(self, guardian_id: str) -> str | None:
        self._refresh()
        return self._guardians.get(guardian_id)

    def school_of_staff(self, staff_id: str) -> str | None:
        self._refresh()
        return self._staff.get(staff_id)

    def reload(self) -> None:
        self._refresh(force=True)
