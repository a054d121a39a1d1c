"""A school for the trust tests: the app in-process (FastAPI's TestClient) against the session's real Redis.

Two classes, so that "their classes" means something: c1 (王老师 aa, homeroom 李老师 hr, aa's backup
赵老师 aa2) and c2 (孙老师 aa3). A sibling school with the same ids checks that an id alone opens
nothing across schools. Each school gets fresh ids ("t-" + 8 hex), its own RQ queue prefix and
rate-limit settings of its own; `close()` removes every key it made.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from support.spine import ALLOW_LOOPBACK, RELAY, ROOT, delete_school_keys

with warnings.catch_warnings():  # Starlette's notice that its TestClient will move to httpx2 one day
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from relay.app.factory import create_app
from relay.base import tokens
from relay.base.directory import load_yaml, publish
from relay.base.runtime import Runtime
from relay.base.settings import Settings

SECRET_KEY = "trust-secret-" + uuid.uuid4().hex
PREVIOUS_KEY = "trust-previous-" + uuid.uuid4().hex
OPEN_LIMITS = "100000/minute"

STAFF: dict[str, tuple[str, list[str]]] = {
    "aa": ("王老师", ["academic_affairs"]),
    "aa2": ("赵老师", ["academic_affairs"]),
    "aa3": ("孙老师", ["academic_affairs"]),
    "hr": ("李老师", ["homeroom"]),
    "nurse": ("刘校医", ["nurse"]),
    "safety": ("陈安全员", ["safety_officer"]),
    "duty": ("周值班", ["duty_leader"]),
    "principal": ("马校长", ["principal"]),
    "admin": ("吴管理员", ["admin"]),
}
STUDENTS = [
    ("s1", "张小明", "c1", "g1", "张妈妈", "+8613800000001"),
    ("s2", "李小华", "c1", "g2", "李爸爸", "+8613800000002"),
    ("s3", "孙小雨", "c2", "g3", "孙妈妈", "+8613800000003"),
]
QUIET_SLA: dict[str, Any] = {
    "P0": {"ack_within": "30m", "resolve_within": "2h", "escalation": [{"after": "30m", "notify": ["role:duty_leader"]}]},
}


def school_document(school_id: str, webhook_url: str) -> dict[str, Any]:
    staff = []
    for staff_id, (name, roles) in STAFF.items():
        member: dict[str, Any] = {"id": staff_id, "name": name, "roles": roles,
                                  "contacts": [{"channel": "webhook", "url": f"{webhook_url}/{school_id}/{staff_id}"}]}
        if staff_id == "aa":
            member["backup"] = "aa2"
        staff.append(member)
    return {
        "id": school_id,
        "name": f"信任测试小学 {school_id}",
        "timezone": "Asia/Shanghai",
        "phone": "0429-5123456",
        "sla": QUIET_SLA,
        "staff": staff,
        "classes": [{"id": "c1", "name": "三年级2班", "academic_affairs": "aa", "homeroom": "hr"},
                    {"id": "c2", "name": "四年级1班", "academic_affairs": "aa3"}],
        "students": [{"id": sid, "name": name, "class_id": cid,
                      "guardians": [{"id": gid, "name": gname, "phone": phone}]}
                     for sid, name, cid, gid, gname, phone in STUDENTS],
    }


def write_yaml(path: Path, school_ids: list[str], webhook_url: str) -> Path:
    document = {"schools": [school_document(s, webhook_url) for s in school_ids]}
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class TrustSchool:
    id: str
    other_id: str
    runtime: Runtime
    client: TestClient
    config: Path

    @property
    def redis(self) -> redis.Redis:
        return self.runtime.redis

    def parent(self, guardian_id: str = "g1", school_id: str | None = None) -> dict[str, str]:
        token = tokens.caller_token("parent", guardian_id, school_id or self.id, [SECRET_KEY], 3600)
        return {"Authorization": f"Bearer {token}"}

    def staff(self, staff_id: str = "aa", school_id: str | None = None) -> dict[str, str]:
        token = tokens.caller_token("staff", staff_id, school_id or self.id, [SECRET_KEY], 3600)
        return {"Authorization": f"Bearer {token}"}

    def submit(self, text: str, student_id: str = "s1", guardian_id: str = "g1", school_id: str | None = None,
               **extra: Any) -> httpx.Response:
        headers = dict(self.parent(guardian_id, school_id), **{"Idempotency-Key": uuid.uuid4().hex})
        return self.client.post("/v1/requests", json={"student_id": student_id, "text": text, **extra},
                                headers=headers)

    def made_request(self, text: str, student_id: str = "s1", guardian_id: str = "g1",
                     school_id: str | None = None) -> dict[str, Any]:
        response = self.submit(text, student_id, guardian_id, school_id)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def timeline(self, request_id: str, school_id: str | None = None) -> list[dict[str, Any]]:
        key = f"relay:{school_id or self.id}:timeline:{request_id}"
        return [json.loads(e) for e in self.redis.lrange(key, 0, -1)]

    def audit(self) -> list[dict[str, str]]:
        return [{k.decode(): v.decode() for k, v in fields.items()}
                for _, fields in self.redis.xrange(f"relay:{self.id}:audit")]

    def relay(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """The `relay` command against this school's Redis and configuration (with more `env`)."""
        given = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "REDIS_URL"}
        env.update(REDIS_URL=str(self.runtime.settings.redis_url), RELAY_SECRET_KEY=SECRET_KEY,
                   RELAY_CONFIG=str(self.config), RELAY_QUEUE_PREFIX=self.runtime.settings.queue_prefix,
                   **ALLOW_LOOPBACK, **given)
        return subprocess.run([RELAY, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)

    def close(self) -> None:
        self.client.close()
        delete_school_keys(self.redis, [self.id, self.other_id])
        for queue in self.runtime.queues.values():
            queue.delete(delete_jobs=True)


def make_school(redis_url: str, tmp_path: Path, webhook_url: str,
                address: str | None = None, **settings: Any) -> TrustSchool:
    school_id = "t-" + uuid.uuid4().hex[:8]
    other_id = school_id + "-b"
    config = write_yaml(tmp_path / f"{school_id}.yaml", [school_id, other_id], webhook_url)
    values: dict[str, Any] = {
        "redis_url": redis_url, "secret_key": SECRET_KEY, "previous_secret_keys": PREVIOUS_KEY,
        "queue_prefix": "relaytrust-" + uuid.uuid4().hex[:8], "public_url": "http://testserver",
        "rate_limit_guardian": OPEN_LIMITS, "rate_limit_ip": OPEN_LIMITS, "rate_limit_bind": OPEN_LIMITS,
        "rate_limit_bind_ip": OPEN_LIMITS, "log_level": "warning",
    }
    values.update(settings)
    runtime = Runtime(Settings(**values))
    publish(runtime.redis, load_yaml(config))
    runtime.directories.reload()
    client = TestClient(create_app(runtime), client=(address or f"client-{uuid.uuid4().hex[:8]}", 50000))
    return TrustSchool(school_id, other_id, runtime, client, config)
