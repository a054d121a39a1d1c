"""Helpers for the administration tests: `relay serve` and `relay worker` on queues of their own.

Redis (a leased database), the webhook receiver and the school documents come from conftest;
each test makes its own schools ("t-" + 8 hex), deleted when the module ends.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from rq import Queue, Worker

from relay.base.directory import Directory, publish
from support.spine import (
    RELAY,
    ROOT,
    WebhookReceiver,
    caller_token,
    delete_school_keys,
    free_port,
    log_tail,
    relay_env,
    school_document,
    start_api,
    stop,
    wait_until,
)

EXAMPLE = ROOT / "deploy/examples/school.yaml"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def admin_document(school_id: str, receiver_url: str, *, with_admin: bool = True) -> dict[str, Any]:
    """conftest's small school, plus an administrator `adm` (the principal `principal` is one too)."""
    document = school_document(school_id, receiver_url)
    if with_admin:
        document["staff"].append({"id": "adm", "name": "马管理员", "roles": ["admin"],
                                  "contacts": [{"channel": "webhook", "url": f"{receiver_url}/{school_id}/adm"}]})
    return document


def today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def workbook_bytes(book: Any) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def bomb_workbook(unpacked: int) -> bytes:
    """A real roster workbook whose one student name is `unpacked` bytes of "A": a few hundred KB that
    inflate to `unpacked` (a zip bomb in an .xlsx). The sizes the zip declares are the true ones."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "学生"
    sheet.append(["学号", "姓名", "班级", "家长1姓名", "家长1电话"])
    sheet.append(["s-1", "BOMB", "c1", "张妈妈", "13800000001"])
    plain = zipfile.ZipFile(io.BytesIO(workbook_bytes(book)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for member in plain.infolist():
            content = plain.read(member)
            if b"BOMB" not in content:
                bomb.writestr(member.filename, content)
                continue
            before, after = content.split(b"BOMB", 1)
            with bomb.open(member.filename, "w", force_zip64=True) as stream:
                stream.write(before)
                left, chunk = unpacked, b"A" * (1024 * 1024)
                while left > 0:
                    stream.write(chunk[:left])
                    left -= len(chunk)
                stream.write(after)
    return out.getvalue()


class AdminStack:
    def __init__(self, redis_url: str, receiver: WebhookReceiver, base: Path) -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.receiver = receiver
        self.base = base
        self.school_ids: list[str] = []
        config = base / "school.yaml"
        first = "t-" + uuid.uuid4().hex[:8]
        self.school_ids.append(first)
        config.write_text(yaml.safe_dump({"schools": [admin_document(first, receiver.url)]}, allow_unicode=True),
                          encoding="utf-8")
        self.env = relay_env(redis_url, config, f"http://127.0.0.1:{free_port()}")
        self.env["RELAY_QUEUE_PREFIX"] = "relayadmin-" + uuid.uuid4().hex[:8]
        # Many requests from one guardian in a few seconds: these tests are about versions, not limits.
        self.env["RELAY_RATE_LIMIT_GUARDIAN"] = "100000/minute"
        self.env["RELAY_RATE_LIMIT_IP"] = "100000/minute"
        self.api, self.url = start_api(self.env, base, port=int(self.env["RELAY_PUBLIC_URL"].rsplit(":", 1)[1]))
        self.worker = self._start_worker()
        self.client = httpx.Client(base_url=self.url, timeout=15)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        log = self.base / "worker.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([RELAY, "worker"], env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        urgent = Queue(f"{self.env['RELAY_QUEUE_PREFIX']}-urgent", connection=self.redis)

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"relay worker exited ({process.returncode}):\n{log_tail(log)}")
            return any(w.name.endswith(f"-{process.pid}") for w in Worker.all(connection=self.redis, queue=urgent))

        wait_until(registered, 30, "relay worker to register", interval=0.05)
        return process

    def close(self) -> None:
        self.client.close()
        stop(self.worker)
        stop(self.api)
        delete_school_keys(self.redis, self.school_ids)
        prefix = self.env["RELAY_QUEUE_PREFIX"]
        for key in list(self.redis.scan_iter(match=f"*{prefix}*", count=500)):
            self.redis.delete(key)
        worker_key = f"rq:worker:relay-{socket.gethostname()}-{self.worker.pid}"
        self.redis.delete(worker_key, f"{worker_key}:executions")
        self.redis.srem("rq:workers", worker_key)

    # Schools and callers ----------------------------------------------------------------------

    def new_school(self, *, with_admin: bool = True) -> str:
        school_id = "t-" + uuid.uuid4().hex[:8]
        self.school_ids.append(school_id)
        self.publish(admin_document(school_id, self.receiver.url, with_admin=with_admin))
        caller = "adm" if with_admin else "principal"
        wait_until(lambda: self.client.get("/v1/admin/versions", headers=self.staff(school_id, caller)).status_code == 200,
                   10, f"the API to know school {school_id}", interval=0.05)
        return school_id

    def publish(self, document: dict[str, Any]) -> int:
        return publish(self.redis, Directory.model_validate({"schools": [document]}))[document["id"]]

    def staff(self, school_id: str, staff_id: str = "adm") -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token('staff', staff_id, school_id)}"}

    def parent(self, school_id: str, guardian_id: str = "g1") -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token('parent', guardian_id, school_id)}"}

    def submit(self, school_id: str, text: str = "请问这周的数学作业是什么", student_id: str = "s1",
               client: httpx.Client | None = None) -> dict[str, Any]:
        headers = self.parent(school_id) | {"Idempotency-Key": uuid.uuid4().hex}
        response = (client or self.client).post("/v1/requests", json={"student_id": student_id, "text": text},
                                                headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def record(self, school_id: str, request_id: str) -> dict[str, Any]:
        raw = self.redis.get(f"relay:{school_id}:request:{request_id}")
        assert raw is not None, f"request {request_id} is not stored"
        data: dict[str, Any] = json.loads(raw)
        return data

    def timeline(self, school_id: str, request_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(f"relay:{school_id}:timeline:{request_id}", 0, -1)]

    def version_seen(self, school_id: str, version: int, text: str = "请问这周的数学作业是什么",
                     timeout: float = 5.0) -> tuple[dict[str, Any], float]:
        """Submit until a new request is planned against `version` (as the staff view says); (its view, seconds)."""
        started = time.monotonic()

        def planned() -> dict[str, Any] | None:
            made = self.submit(school_id, text)
            view = self.client.get(f"/v1/requests/{made['id']}", headers=self.staff(school_id)).json()
            return view if view["directory_version"] >= version else None

        view = wait_until(planned, timeout, f"a request planned against version {version}", interval=0.02)
        assert view is not None
        return view, time.monotonic() - started
