"""Consent and data rights: a guardian exports or deletes everything of theirs; requests past the
retention period are purged by the daily timer and by `relay purge`."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.spine import WebhookReceiver
from support.trust import TrustSchool, make_school

from relay.base import keys, store
from relay.base.runtime import Runtime, set_runtime
from relay.core import export, retention, timers
from relay.pages.privacy import NOTICE_VERSION
from relay.school import bindings, refresh_tokens


@pytest.fixture
def school(redis_url: str, receiver: WebhookReceiver, tmp_path: Path) -> Iterator[TrustSchool]:
    made = make_school(redis_url, tmp_path, receiver.url)
    yield made
    made.close()


def keys_of(school: TrustSchool, pattern: str) -> list[str]:
    return sorted(k.decode() for k in school.redis.scan_iter(f"relay:{school.id}:{pattern}"))


def test_a_guardian_exports_their_requests_with_timelines(school: TrustSchool) -> None:
    first = school.made_request("孩子明天请假")["id"]
    second = school.made_request("孩子在学校发烧了")["id"]
    school.made_request("请问作业本在哪里买？", student_id="s3", guardian_id="g3")
    school.client.post(f"/v1/requests/{first}/reply", json={"text": "收到，已登记"}, headers=school.staff("aa"))
    school.client.post(f"/v1/requests/{first}/note", json={"text": "内部备注：家长常请假"}, headers=school.staff("aa"))
    bindings.bind(school.runtime, school.id, "g1", "o-export", {"health_info": True, "notice_version": NOTICE_VERSION})

    response = school.client.get("/v1/me/export", headers=school.parent("g1"))
    assert response.status_code == 200
    exported = response.json()
    assert exported["guardian"] == {"id": "g1", "name": "张妈妈", "phone": "+8613800000001"}
    assert {r["id"] for r in exported["requests"]} == {first, second}
    replied = next(r for r in exported["requests"] if r["id"] == first)
    assert "replied" in [e["kind"] for e in replied["timeline"]]
    assert "内部备注" not in json.dumps(exported, ensure_ascii=False)  # staff's working notes are the school's
    assert exported["bindings"][0]["consent"]["notice_version"] == NOTICE_VERSION
    assert "o-export" not in json.dumps(exported)


def test_a_guardian_deletes_their_data_and_only_theirs(school: TrustSchool) -> None:
    r = school.redis
    mine = [school.made_request("孩子在学校发烧了")["id"], school.made_request("孩子明天请假")["id"]]
    theirs = school.made_request("请问作业本在哪里买？", student_id="s2", guardian_id="g2")["id"]
    school.client.post(f"/v1/requests/{mine[1]}/ack", headers=school.staff("aa"))
    bindings.bind(school.runtime, school.id, "g1", "o-delete-me", {"health_info": True, "notice_version": "v"})
    refresh = refresh_tokens.issue(school.runtime, school.id, "g1")
    assert keys_of(school, "idem:g1:*") and keys_of(school, f"delivery:{mine[0]}.*")
    assert any(mine[0] in m.decode() for m in r.zrange(keys.timers(school.id), 0, -1))

    # An emergency still being handled is not deleted under the school's feet.
    refused = school.client.delete("/v1/me/data", headers=school.parent("g1"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "open_emergency"
    assert mine[0] in refused.json()["error"]["message"]
    assert r.exists(keys.request(school.id, mine[0])) and keys_of(school, "binding:*")
    school.client.post(f"/v1/requests/{mine[0]}/resolve", json={"note": "已处理", "message": "孩子已回教室。"},
                       headers=school.staff("aa"))

    response = school.client.delete("/v1/me/data", headers=school.parent("g1"))
    assert response.status_code == 200 and response.json() == {"deleted_requests": 2}

    for request_id in mine:
        assert not r.exists(keys.request(school.id, request_id), keys.timeline(school.id, request_id))
        assert r.zscore(keys.open_requests(school.id), request_id) is None
        assert not keys_of(school, f"delivery:{request_id}.*")
        assert not any(request_id in m.decode() for m in r.zrange(keys.timers(school.id), 0, -1))
        assert school.client.get(f"/v1/requests/{request_id}", headers=school.parent("g1")).status_code == 404
        assert school.client.post(f"/v1/requests/{request_id}/ack", headers=school.staff("aa")).status_code == 404
    assert not keys_of(school, "idem:g1:*") and not keys_of(school, "guardian:g1:*")
    assert not keys_of(school, "binding:*")
    assert bindings.find_binding(school.runtime, "o-delete-me") is None
    with pytest.raises(refresh_tokens.RefreshRefused):
        refresh_tokens.rotate(school.runtime, refresh)
    assert school.client.get("/v1/requests", headers=school.parent("g1")).json() == {"requests": []}
    # The other guardian's request is untouched.
    assert r.exists(keys.request(school.id, theirs), keys.timeline(school.id, theirs)) == 2
    # The audit log keeps a count and nothing that says whose.
    deletion = [e for e in school.audit() if e["action"] == "guardian_data_deleted"]
    assert deletion == [{"at": deletion[0]["at"], "staff_id": "", "action": "guardian_data_deleted", "request_id": "",
                         "count": "2"}]
    assert any(e["action"] == "ack" and e["request_id"] == mine[1] for e in school.audit())


def aged(school: TrustSchool, text: str, days: float, closed_days: float | None = None) -> str:
    """A request submitted now, then stored again under an id from `days` ago (ids carry their time),
    resolved `closed_days` ago when given (open otherwise)."""
    made = school.made_request(text)["id"]
    current = json.loads(school.redis.get(keys.request(school.id, made)))
    old_id = store.new_request_id(time.time() - days * 86400)
    current["id"] = old_id
    if closed_days is not None:
        closed = dt.datetime.fromtimestamp(time.time() - closed_days * 86400, dt.UTC).isoformat(timespec="seconds")
        current.update(status="resolved", resolved_at=closed, updated_at=closed)
    with school.redis.pipeline(transaction=True) as pipe:
        store.write_request(pipe, store.RequestRecord.model_validate(current))
        pipe.rpush(keys.timeline(school.id, old_id), store.timeline_entry("received", current["created_at"]))
        pipe.zadd(keys.guardian_requests(school.id, current["guardian_id"]), {old_id: time.time() - days * 86400})
        pipe.zadd(keys.school_requests(school.id), {old_id: time.time() - days * 86400})
        pipe.set(keys.delivery(school.id, f"{old_id}.created.0.aa"), json.dumps({"event_id": f"{old_id}.created.0.aa"}))
        pipe.execute()
    return old_id


def test_relay_purge_exports_then_deletes_closed_requests_past_retention(school: TrustSchool, tmp_path: Path) -> None:
    old_closed = aged(school, "去年的请假", 400, closed_days=390)
    old_open = aged(school, "一直没人处理的请假", 400)  # open: never expires, however old
    lately_closed = aged(school, "去年开学时的问题", 300, closed_days=30)  # closed a month ago: kept
    assert retention.created_at(old_closed) == pytest.approx(time.time() - 400 * 86400, abs=5)
    # An audit entry from before the audit retention period, and one from now.
    school.redis.xadd(keys.audit(school.id), {"at": "old", "staff_id": "aa", "action": "view", "request_id": "r1"},
                      id=f"{int((time.time() - 200 * 86400) * 1000)}-0")
    exports = tmp_path / "exports"
    env = {"RELAY_RETENTION_EXPORT_DIR": str(exports)}

    dry = school.relay("purge", "--dry-run", "--school", school.id, env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"school_id": school.id, "would_purge": 1, "older_than_days": 180,
                                      "audit_entries": 1, "audit_older_than_days": 180, "export": None}
    assert school.redis.exists(keys.request(school.id, old_closed)) and not exports.exists()

    done = school.relay("purge", "--school", school.id, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["purged"] == 1 and answer["audit_entries"] == 1
    exported = export.read(Path(answer["export"]))
    assert Path(answer["export"]).parent == exports / school.id
    assert oct(Path(answer["export"]).stat().st_mode & 0o777) == "0o600"  # it holds children's data
    requests = [line for line in exported if line["kind"] == "request"]
    assert [line["request"]["id"] for line in requests] == [old_closed]
    assert requests[0]["timeline"][0]["kind"] == "received" and requests[0]["request"]["text"] == "去年的请假"
    assert [d["event_id"] for d in requests[0]["deliveries"]] == [f"{old_closed}.created.0.aa"]
    assert [line["entry"]["at"] for line in exported if line["kind"] == "audit"] == ["old"]

    assert not school.redis.exists(keys.request(school.id, old_closed), keys.timeline(school.id, old_closed),
                                   keys.delivery(school.id, f"{old_closed}.created.0.aa"))
    assert school.redis.zscore(keys.guardian_requests(school.id, "g1"), old_closed) is None
    assert school.redis.zscore(keys.school_requests(school.id), old_closed) is None
    assert school.redis.exists(keys.request(school.id, old_open), keys.request(school.id, lately_closed)) == 2
    assert "old" not in [e["at"] for e in school.audit()]
    assert [e["count"] for e in school.audit() if e["action"] == "retention_purged"] == ["1"]


def test_a_purge_that_cannot_write_its_export_deletes_nothing(school: TrustSchool, tmp_path: Path) -> None:
    old_closed = aged(school, "去年的请假", 400, closed_days=390)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the export directory should be")
    done = school.relay("purge", "--school", school.id, env={"RELAY_RETENTION_EXPORT_DIR": str(blocked)})
    assert done.returncode == 1 and "nothing was purged" in done.stderr
    assert school.redis.exists(keys.request(school.id, old_closed), keys.timeline(school.id, old_closed)) == 2


def test_the_daily_purge_timer_purges_and_rearms(school: TrustSchool, tmp_path: Path) -> None:
    old = aged(school, "很久以前的请假", 366, closed_days=200)
    assert timers.KINDS["purge"] == ("purge", "relay.core.retention.purge_on_timer", "routine", False)
    assert retention.PURGE_TIMER == "purge|daily"
    retention.arm_daily(school.runtime, [school.id])
    due = school.redis.zscore(keys.timers(school.id), retention.PURGE_TIMER)
    assert due is not None and due / 1000 > time.time()
    retention.arm_daily(school.runtime, [school.id], first_in=0)  # an armed timer keeps its time
    assert school.redis.zscore(keys.timers(school.id), retention.PURGE_TIMER) == due
    runtime = Runtime(school.runtime.settings.model_copy(update={"retention_export_dir": str(tmp_path)}),
                      connection=school.redis)
    set_runtime(runtime)
    try:
        assert retention.purge_on_timer(school.id, "daily") == "purged 1"
    finally:
        set_runtime(None)
    assert not school.redis.exists(keys.request(school.id, old))
    assert [p.name.endswith(".jsonl.gz") for p in (tmp_path / school.id).iterdir()] == [True]
