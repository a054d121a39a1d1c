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
from pathlib import Path
from typing import Any

import redis
import yaml

from relay import keys
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


def publish(connection: redis.Redis, directory: Directory) -> dict[str, int]:
    """Make each school's directory the current version; an unchanged school keeps its version."""
    versions: dict[str, int] = {}
    for school in directory.schools:
        document = school.model_dump_json()
        digest = _digest(document)
        current = connection.get(keys.directory_current(school.id))
        if current is not None:
            stored = connection.get(keys.directory_version(school.id, int(current)))
            if stored is not None and json.loads(stored).get("digest") == digest:
                versions[school.id] = int(current)
                continue
        version = int(connection.incr(keys.directory_current(school.id) + ":seq"))
        snapshot = json.dumps({"version": version, "digest": digest, "published_at": time.time(), "school": document})
        with connection.pipeline(transaction=True) as pipe:
            pipe.set(keys.directory_version(school.id, version), snapshot)
            pipe.set(keys.directory_current(school.id), version)
            pipe.sadd(keys.SCHOOLS, school.id)
            pipe.execute()
        versions[school.id] = version
    return versions


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
