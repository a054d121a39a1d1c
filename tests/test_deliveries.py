"""The delivery record and its one module: old records load, states move only forward, one TTL, one writer,
and the event table that words every notification."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from support.spine import ROOT, delete_school_keys

from adapters.miniprogram import STATUS_WORDS
from relay.base.runtime import Runtime
from relay.base.settings import Settings
from relay.base.store import RequestRecord
from relay.core import deliveries
from relay.core.deliveries import DELIVERY_TTL_SECONDS, Delivery, DeliveryState, InvalidTransition
from relay.core.notice_events import EVENTS, Event, Wording
from relay.core.notices import event_id, parent_can_hear

# Records exactly as the code before relay/core/deliveries.py wrote them (json.dumps of its dicts).
OLD_RECORDS: list[dict[str, Any]] = [
    {"event_id": "r1.urgent.0.aa", "school_id": "s", "request_id": "r1", "staff_id": "aa", "why": "owner",
     "event": "request.urgent", "urgency": "P0", "contact_index": 0, "attempt": 0, "state": "pending",
     "created_at": 1767225600.123},
    {"event_id": "r1.assigned.0.guardian-g1", "school_id": "s", "request_id": "r1", "recipient": "guardian",
     "guardian_id": "g1", "why": "guardian", "event": "request.assigned", "urgency": "P1", "contact_index": 0,
     "attempt": 1, "state": "delivered", "created_at": 1767225600.0, "owner_id": "aa"},
    {"event_id": "r1.digest.1767225600.aa", "school_id": "s", "request_id": "r1", "staff_id": "aa",
     "why": "digest", "event": "request.digest", "urgency": "P2", "contact_index": 0, "attempt": 0,
     "state": "pending", "created_at": 1767225600.0, "request_ids": ["r1", "r2"]},
    {"event_id": "r1.outbreak.1767225600.nn", "school_id": "s", "request_id": "r1", "staff_id": "nn",
     "why": "outbreak", "event": "request.outbreak", "urgency": "P1", "contact_index": 0, "attempt": 0,
     "state": "pending", "created_at": 1767225600.0, "count": 3, "window_s": 3600, "symptom": "发热"},
    {"event_id": "r1.urgent.0.aa.next", "school_id": "s", "request_id": "r1", "staff_id": "aa", "why": "owner",
     "event": "request.urgent", "urgency": "P0", "contact_index": 1, "attempt": 3, "state": "failed",
     "created_at": 1767225600.0},
    {"event_id": "r1.urgent.0.nn", "school_id": "s", "request_id": "r1", "staff_id": "nn", "why": "nurse",
     "event": "request.urgent", "urgency": "P0", "contact_index": 0, "attempt": 0, "state": "pending",
     "created_at": 1767225600.0, "redrives": 2},
]


@pytest.mark.parametrize("old", OLD_RECORDS, ids=[r["event"] + "/" + r["state"] for r in OLD_RECORDS])
def test_a_record_written_by_the_old_code_loads_and_is_written_back_in_the_same_shape(old: dict[str, Any]) -> None:
    loaded = deliveries.parse(json.dumps(old))

    assert loaded is not None
    assert loaded.event == old["event"] and loaded.state == old["state"] and loaded.urgency == old["urgency"]
    assert loaded.document() == old
    assert list(json.loads(loaded.to_json())) == list(old)  # the same keys in the same order


def test_what_is_not_a_delivery_does_not_load() -> None:
    assert deliveries.parse(None) is None
    assert deliveries.parse("not json") is None
    assert deliveries.parse(json.dumps({"event_id": "x"})) is None
    no_recipient = {k: v for k, v in OLD_RECORDS[0].items() if k != "staff_id"}
    assert deliveries.parse(json.dumps(no_recipient)) is None
    unbound = {k: v for k, v in OLD_RECORDS[1].items() if k != "guardian_id"}
    assert deliveries.parse(json.dumps(unbound)) is None


def test_recipients() -> None:
    staff, guardian = Delivery.model_validate(OLD_RECORDS[0]), Delivery.model_validate(OLD_RECORDS[1])
    assert (staff.for_guardian, staff.recipient_id) == (False, "aa")
    assert (guardian.for_guardian, guardian.recipient_id) == (True, "g1")


@pytest.mark.parametrize("end", [DeliveryState.delivered, DeliveryState.failed, DeliveryState.cancelled])
def test_a_pending_delivery_ends_once(end: DeliveryState) -> None:
    delivery = Delivery.model_validate(OLD_RECORDS[0])
    delivery.move_to(end)
    assert delivery.state is end and end.final
    for state in DeliveryState:
        if state is not DeliveryState.pending or end is not DeliveryState.failed:
            with pytest.raises(InvalidTransition):
                delivery.move_to(state)


def test_only_a_failed_delivery_is_redriven_and_it_starts_again_from_the_first_contact() -> None:
    failed = Delivery.model_validate(OLD_RECORDS[4])
    failed.redriven()
    assert (failed.state, failed.contact_index, failed.attempt, failed.redrives) == ("pending", 0, 0, 1)
    assert failed.event_id == OLD_RECORDS[4]["event_id"]
    with pytest.raises(InvalidTransition):
        failed.redriven()  # pending already
    delivered = Delivery.model_validate(OLD_RECORDS[1])
    with pytest.raises(InvalidTransition):
        delivered.redriven()


def test_the_fallback_is_a_new_delivery_to_the_next_contact() -> None:
    first = Delivery.model_validate(dict(OLD_RECORDS[0], state="delivered", attempt=2))
    nxt = first.fallback()
    assert (nxt.event_id, nxt.contact_index, nxt.attempt, nxt.state) == ("r1.urgent.0.aa.next", 1, 0, "pending")
    assert first.event_id == "r1.urgent.0.aa" and first.state == "delivered"


def test_event_ids_are_unchanged() -> None:
    assert event_id("r1", Event.urgent, 0, "aa") == "r1.urgent.0.aa"
    assert event_id("r1", Event.ack_confirmed, 0, "aa") == "r1.ack_confirmed.0.aa"
    assert event_id("r1", Event.answered, 2, "guardian-g1") == "r1.answered.2.guardian-g1"
    assert deliveries.request_of("r1.urgent.0.aa.next") == "r1"


# --- the event table ----------------------------------------------------------------------------


def test_every_event_has_its_row_and_only_pages_stop_at_an_ack() -> None:
    assert set(EVENTS) == set(Event)
    assert {e for e, kind in EVENTS.items() if kind.stopped_by_ack} == {Event.urgent, Event.created, Event.escalated}
    assert {e for e, kind in EVENTS.items() if kind.first_alert} == {Event.urgent, Event.created}
    assert {e for e, kind in EVENTS.items() if kind.for_parent} == {Event.received, Event.assigned, Event.answered}


def test_a_parent_reads_the_same_status_words_as_before() -> None:
    for event, kind in EVENTS.items():
        if kind.for_parent:
            assert kind.parent_status == STATUS_WORDS[event.value]


def words(event: Event, **fields: Any) -> str:
    delivery = Delivery.model_validate(dict(OLD_RECORDS[0], event=event.value, **fields.pop("delivery", {})))
    return EVENTS[event].words(Wording(delivery, **fields))


def test_the_words_of_each_event() -> None:
    summary = "三年级2班 张同学 身体不适（紧急）"
    assert words(Event.urgent, summary=summary) == summary
    assert words(Event.escalated, summary=summary, escalation_step=2) == f"【升级·第2级】{summary}"
    assert words(Event.fyi, summary=summary) == f"【知悉】{summary}"
    assert words(Event.ack_confirmed, summary=summary) == f"已确认，由您处理：{summary}"
    assert words(Event.reminder, summary=summary) == f"【提醒】已确认的请求尚无进展：{summary}"
    assert words(Event.parent_update, summary=summary) == f"【家长补充·紧急】{summary}"
    assert words(Event.reassigned, summary=summary) == f"【转交给您】{summary}"
    assert words(Event.digest, delivery={"request_ids": ["a", "b", "c"]}) == "【今日待处理】3 条家长请求（非工作时间收到）"
    assert words(Event.digest) == "【今日待处理】1 条家长请求（非工作时间收到）"
    outbreak = {"count": 3, "window_s": 3600, "symptom": "发热"}
    assert words(Event.outbreak, class_name="三年级2班", delivery=outbreak) == "【聚集性提示】三年级2班 1小时内 3 例发热"
    assert words(Event.outbreak, class_name="三年级2班", delivery=dict(outbreak, window_s=1800)) == \
        "【聚集性提示】三年级2班 30分钟内 3 例发热"
    assert words(Event.received, eta_text="今天16:00前回复") == "学校已收到，今天16:00前回复"
    assert words(Event.received) == "学校已收到"
    assert words(Event.assigned, owner="王老师", eta_text="今天16:00前回复") == "王老师已接手，今天16:00前回复"
    assert words(Event.answered, owner="王老师") == "王老师已回复，请查看"


# --- against Redis ------------------------------------------------------------------------------


@dataclass
class Place:
    school_id: str
    connection: redis.Redis
    runtime: Runtime

    def record(self, urgency: str = "P0") -> RequestRecord:
        return RequestRecord(
            id="r" + uuid.uuid4().hex, school_id=self.school_id, student_id="s1", class_id="c1", guardian_id="g1",
            text="…", urgency=urgency, category="medical", reasons=[], owner="aa", ack_due_at=None,
            resolve_due_at=None, eta_text="", created_at="2026-12-01T09:00:00+08:00",
            updated_at="2026-12-01T09:00:00+08:00", directory_version=1,
        )

    def key(self, eid: str) -> str:
        return f"relay:{self.school_id}:delivery:{eid}"


@pytest.fixture
def place(redis_url: str) -> Iterator[Place]:
    school_id = "t-" + uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(redis_url)
    settings = Settings(queue_prefix="relaydeliv-" + uuid.uuid4().hex[:8], dev_outbox=True)
    runtime = Runtime(settings, connection=connection)
    yield Place(school_id, connection, runtime)
    delete_school_keys(connection, [school_id])
    for queue in runtime.queues.values():
        queue.delete(delete_jobs=True)


def test_queue_writes_the_record_its_watchdog_and_its_job_once_with_the_one_ttl(place: Place) -> None:
    record = place.record()
    eid = event_id(record.id, Event.urgent, 0, "aa")
    for _ in range(2):
        with place.connection.pipeline(transaction=True) as pipe:
            deliveries.queue(pipe, place.runtime, deliveries.new(record, eid, Event.urgent, "owner", staff_id="aa"))
            pipe.execute()
        # The first one is finished before the duplicate arrives: the duplicate never overwrites it.
        first = deliveries.load(place.connection, place.school_id, eid)
        assert first is not None
        if first.state is DeliveryState.pending:
            deliveries.finish(place.connection, first, record, DeliveryState.delivered, None)

    stored = deliveries.load(place.connection, place.school_id, eid)
    assert stored is not None and stored.state is DeliveryState.delivered
    assert DELIVERY_TTL_SECONDS - 5 < place.connection.ttl(place.key(eid)) <= DELIVERY_TTL_SECONDS
    emergency = place.runtime.queue_for("P0")
    assert [j.func_name for j in emergency.jobs] == ["relay.core.jobs.deliver", "relay.core.jobs.deliver"]
    assert place.connection.exists(f"relay:{place.school_id}:delivery:{eid}:queued")
    timeline = [json.loads(e) for e in place.connection.lrange(f"relay:{place.school_id}:timeline:{record.id}", 0, -1)]
    assert [(e["kind"], e["event_id"]) for e in timeline] == [("delivered", eid)]


def test_a_failed_delivery_is_dead_lettered_and_every_write_keeps_the_one_ttl(place: Place) -> None:
    record = place.record(urgency="P1")
    delivery = deliveries.new(record, event_id(record.id, Event.created, 0, "aa"), Event.created, "owner",
                              staff_id="aa")
    with place.connection.pipeline(transaction=True) as pipe:
        deliveries.retry_at(pipe, delivery, 4_000_000_000.0)
        pipe.execute()
    assert place.connection.ttl(place.key(delivery.event_id)) > DELIVERY_TTL_SECONDS - 5

    deliveries.finish(place.connection, delivery, record, DeliveryState.failed, "client")

    letters = place.connection.lrange(f"relay:{place.school_id}:deadletters", 0, -1)
    assert [deliveries.parse(raw) for raw in letters] == [delivery]
    assert place.connection.zscore(f"relay:{place.school_id}:timers", f"deliver|{delivery.event_id}") is None
    assert DELIVERY_TTL_SECONDS - 5 < place.connection.ttl(place.key(delivery.event_id)) <= DELIVERY_TTL_SECONDS


def test_a_guardian_not_subscribed_is_not_an_operators_task(place: Place) -> None:
    record = place.record()
    delivery = deliveries.new(record, event_id(record.id, Event.received, 0, "guardian-g1"), Event.received,
                              "guardian", guardian_id="g1")
    deliveries.finish(place.connection, delivery, record, DeliveryState.failed, "recipient")
    assert place.connection.llen(f"relay:{place.school_id}:deadletters") == 0


def test_parent_can_hear_reads_on_the_connection_it_is_given_and_refuses_a_pipeline_in_multi(place: Place) -> None:
    record = place.record()
    assert parent_can_hear(place.connection, place.runtime, record) is False
    place.connection.set(f"relay:{place.school_id}:guardian:g1:openid", "o-1")
    assert parent_can_hear(place.connection, place.runtime, record) is True
    with place.connection.pipeline(transaction=True) as pipe:
        pipe.watch(f"relay:{place.school_id}:guardian:g1:openid")
        assert parent_can_hear(pipe, place.runtime, record) is True  # WATCHing: reads answer at once
        pipe.multi()
        with pytest.raises(ValueError):
            parent_can_hear(pipe, place.runtime, record)


# --- one writer ---------------------------------------------------------------------------------


def relay_sources() -> list[Path]:
    return sorted((ROOT / "relay").rglob("*.py"))


def test_no_module_but_deliveries_touches_a_delivery_key_or_pushes_a_dead_letter() -> None:
    touching = re.compile(r"keys\.delivery(_queued|_lock)?\(|lpush\(keys\.dead_letters\(")
    offenders = [str(p.relative_to(ROOT)) for p in relay_sources()
                 if p.name != "deliveries.py" and touching.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_ttl_and_the_event_names_are_written_once() -> None:
    ttl = [str(p.relative_to(ROOT)) for p in relay_sources() if "30 * 86400" in p.read_text(encoding="utf-8")
           and p.name != "settings.py"]  # settings: the tokens' own 30 days
    assert ttl == ["relay/core/deliveries.py"]
    names = [str(p.relative_to(ROOT)) for p in relay_sources() if '"request.' in p.read_text(encoding="utf-8")]
    assert names == ["relay/core/notice_events.py"]


def test_the_weekly_report_reads_dead_letters_through_the_typed_record(place: Place) -> None:
    from relay.school import report

    week = (1767225600.0, 1767225600.0 + 7 * 86400)
    inside = dict(OLD_RECORDS[4], school_id=place.school_id, created_at=week[0] + 60)
    before = dict(OLD_RECORDS[4], school_id=place.school_id, event_id="r0.urgent.0.aa", created_at=week[0] - 60)
    for raw in (json.dumps(before), "not a delivery", json.dumps(inside)):
        place.connection.lpush(f"relay:{place.school_id}:deadletters", raw)

    assert report._dead_letters(place.connection, place.school_id, *week) == [inside]
