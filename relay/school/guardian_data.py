"""A guardian's data rights: export everything Relay holds about their requests, or delete it.

Export is what the guardian may see: their requests with the timeline a parent sees (staff's
internal notes and delivery traces are the school's working records, not shown), their bindings
and the consent they gave. Deletion removes their requests, timelines and indexes, their
idempotency keys, their WeChat bindings (the openid kept for status messages too) and refresh tokens; the audit log keeps one entry with
the count, nothing that says whose they were.

An emergency still open is not deleted under the school's feet: while a P0 is open (staff are
being paged about a child's health or safety), deletion is refused and the guardian is told to
ask again once it is closed; deleting it would silently stop the escalation.
"""

from __future__ import annotations

from typing import Any

from relay.base import keys, store
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.core import audit
from relay.core.retention import forget
from relay.core.views import parent_view
from relay.school import bindings, refresh_tokens
from routing.directory import School
from routing.labels import Urgency


def _records(runtime: Runtime, school_id: str, guardian_id: str) -> list[store.RequestRecord]:
    ids = store.guardian_request_ids(runtime.redis, school_id, guardian_id, limit=1_000_000)
    return [r for r in (store.load(runtime.redis, school_id, i) for i in ids) if r is not None]


def export(runtime: Runtime, school: School, guardian_id: str) -> dict[str, Any]:
    guardian = school.guardian(guardian_id)
    children = [school.student(s) for s in school.children_of(guardian_id)]
    return {
        "guardian": {"id": guardian_id, "name": guardian.name if guardian else "",
                     "phone": guardian.phone if guardian else None},
        "school": {"id": school.id, "name": school.name},
        "children": [{"id": c.id, "name": c.name, "class_id": c.class_id} for c in children if c is not None],
        "bindings": bindings.of_guardian(runtime, school.id, guardian_id),
        "requests": [parent_view(runtime, school, r) for r in _records(runtime, school.id, guardian_id)],
    }


class OpenEmergency(Exception):
    """The guardian has an emergency the school is still handling."""

    def __init__(self, request_ids: list[str]) -> None:
        super().__init__(", ".join(request_ids))
        self.request_ids = request_ids


def delete(runtime: Runtime, school_id: str, guardian_id: str) -> int:
    """Delete the guardian's requests and bindings; returns how many requests were deleted."""
    r = runtime.redis
    records = _records(runtime, school_id, guardian_id)
    emergencies = [record.id for record in records if record.is_open and record.urgency == Urgency.P0.value]
    if emergencies:
        raise OpenEmergency(emergencies)
    deleted = forget(r, school_id, records)
    leftovers = list(r.scan_iter(match=keys.idempotency(school_id, guardian_id, "*"), count=1000))
    leftovers += r.scan_iter(match=keys.open_emergency(school_id, guardian_id, "*"), count=1000)
    refresh_tokens.revoke_all(runtime, school_id, guardian_id)
    with r.pipeline(transaction=True) as pipe:
        for key in leftovers + bindings.binding_keys(runtime, school_id, guardian_id):
            pipe.delete(key)
        pipe.delete(keys.guardian_requests(school_id, guardian_id))
        pipe.delete(keys.guardian_openid(school_id, guardian_id))
        audit.record_count(pipe, school_id, "guardian_data_deleted", deleted)
        pipe.execute()
    log.info("guardian_data_deleted", school_id=school_id, count=deleted)
    return deleted
