"""Consent and data rights: a guardian exports or deletes everything of theirs; requests past the
retention period are purged by the daily timer and by `relay purge`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.spine import WebhookReceiver
from support.trust import TrustSchool, make_school

from relay.base import keys, store
from relay.base.runtime import set_runtime
from relay.core import retention, timers
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


def aged(school: TrustSchool, text: str, days: float) -> str:
    """A request submitted now, then stored again under an id from `days` ago (ids carry their time)."""
    made = school.made_request(text)["id"]
    current = json.loads(school.redis.get(keys.request(school.id, made)))
    old_id = store.new_request_id(time.time() - days * 86400)
    current["id"] = old_id
    with school.redis.pipeline(transaction=True) as pipe:
        store.write_request(pipe, store.RequestRecord.model_validate(current))
        pipe.rpush(keys.timeline(school.id, old_id), store.timeline_entry("received", current["created_at"]))
        pipe.zadd(keys.guardian_requests(school.id, current["guardian_id"]), {old_id: time.time() - days * 86400})
        pipe.execute()
    return old_id


def test_relay_purge_deletes_what_is_past_retention(school: TrustSchool) -> None:
    old = aged(school, "去年的请假", 400)
    recent = aged(school, "上个月的请假", 30)
    assert retention.created_at(old) == pytest.approx(time.time() - 400 * 86400, abs=5)

    dry = school.relay("purge", "--dry-run", "--school", school.id)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"school_id": school.id, "would_purge": 1, "older_than_days": 365}
    assert school.redis.exists(keys.request(school.id, old))

    done = school.relay("purge", "--school", school.id)
    assert json.loads(done.stdout)["purged"] == 1
    assert not school.redis.exists(keys.request(school.id, old), keys.timeline(school.id, old))
    assert school.redis.zscore(keys.guardian_requests(school.id, "g1"), old) is None
    assert school.redis.exists(keys.request(school.id, recent))
    assert [e["count"] for e in school.audit() if e["action"] == "retention_purged"] == ["1"]


def test_the_daily_purge_timer_purges_and_rearms(school: TrustSchool) -> None:
    old = aged(school, "很久以前的请假", 366)
    assert timers.KINDS["purge"] == ("purge", "relay.core.retention.purge_on_timer", "routine", False)
    assert retention.PURGE_TIMER == "purge|daily"
    retention.arm_daily(school.runtime, [school.id])
    due = school.redis.zscore(keys.timers(school.id), retention.PURGE_TIMER)
    assert due is not None and due / 1000 > time.time()
    retention.arm_daily(school.runtime, [school.id], first_in=0)  # an armed timer keeps its time
    assert school.redis.zscore(keys.timers(school.id), retention.PURGE_TIMER) == due
    set_runtime(school.runtime)
    try:
        assert retention.purge_on_timer(school.id, "daily") == "purged 1"
    finally:
        set_runtime(None)
    assert not school.redis.exists(keys.request(school.id, old))
    tomorrow = school.redis.zscore(keys.timers(school.id), retention.PURGE_TIMER)
    assert tomorrow is not None and tomorrow / 1000 == pytest.approx(time.time() + 86400, abs=60)
