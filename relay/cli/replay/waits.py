"""Emergencies that waited: in a replay of labelled messages, each P0 by its label that was not paged at once.

"Paged" is a notification that carries the request as a P0 (the emergency fan-out); a labelled
emergency the triage read lower reaches staff as today's or routine work, if at all before the
morning. Its wait runs from intake to the first page, or to the first staff acknowledgement or
resolution, whichever came first (a person who opens it knows what it is); one that nothing ended
waits to the end of the replay. The summary keeps these figures under their own key, `labelled`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from typing import Any

from relay.cli.replay.harness import Replay
from relay.cli.replay.receiver import Notification
from relay.core.notice_events import Event
from routing import learned
from routing.calendar import SchoolCalendar
from routing.labels import Urgency

PAGED_WITHIN_S = 60.0  # the promise: an emergency is paged in the minute it arrives
LONG_WAIT_S = 300.0  # the aim counts emergencies that waited longer than five minutes
LONG_WAIT_AIM = 0.02


def _at(iso_text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(iso_text) if iso_text else None


def _seconds(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "max": None}
    return {"count": len(values), "median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def _in_school_hours(calendar: SchoolCalendar, moment: dt.datetime) -> bool:
    local = moment.astimezone(calendar.zone)
    day = calendar.day(local.date())
    return bool(day.school_day and day.hours and day.hours[0] <= local.time() < day.hours[1])


def _last_moment(replay: Replay) -> dt.datetime:
    """Where the replay's clock stopped: the last notification or request change it recorded."""
    moments = [dt.datetime.fromisoformat(n.sent_at) for n in replay.notifications]
    moments += [dt.datetime.fromisoformat(r.updated_at) for r in replay.records.values()]
    return max(moments)


def _model(writers: set[str]) -> dict[str, Any]:
    path = learned.model_path()
    try:
        about = learned.load(path).about
    except (OSError, ValueError):
        return {"path": str(path), "loaded": False, "trained_on": [], "writers_it_read": sorted(writers)}
    trained = [str(w) for w in about.get("writers", [])]
    return {"path": str(path), "loaded": True, "trained_on": trained,
            # Held-out figures are honest only when this is empty.
            "writers_it_read": sorted(writers & set(trained))}


def _wait(replay: Replay, calendar: SchoolCalendar, request_id: str, notes: list[Notification],
          end_of_replay: dt.datetime) -> dict[str, Any]:
    record = replay.records[request_id]
    created = dt.datetime.fromisoformat(record.created_at)
    pages = [dt.datetime.fromisoformat(n.sent_at) for n in notes
             if n.urgency == Urgency.P0.value and n.event != Event.ack_confirmed]
    ends = {"paged": min(pages, default=None), "acknowledged": _at(record.acknowledged_at),
            "resolved": _at(record.resolved_at)}
    known = {why: at for why, at in ends.items() if at is not None}
    ended_by = min(known, key=lambda why: known[why]) if known else "never"
    ended = known.get(ended_by, end_of_replay)
    first = min((dt.datetime.fromisoformat(n.sent_at) for n in notes), default=None)
    return {
        "given": f"{record.urgency} {record.category}",
        "reasons": list(record.reasons),
        "received": created.astimezone(calendar.zone).isoformat(),
        "in_school_hours": _in_school_hours(calendar, created),
        "waited_s": round((ended - created).total_seconds(), 1),
        "ended_by": ended_by,
        "first_notification_s": round((first - created).total_seconds(), 1) if first else None,
    }


def build(replay: Replay) -> dict[str, Any]:
    """The `labelled` figures of a replay of labelled messages (`relay simulate --messages`)."""
    calendar = SchoolCalendar(replay.school)
    notes_of: dict[str, list[Notification]] = {}
    for note in replay.notifications:
        for request_id in note.request_ids:
            notes_of.setdefault(request_id, []).append(note)
    end_of_replay = _last_moment(replay) if replay.records else dt.datetime.now(dt.UTC)
    writers = Counter(m.writer for m in replay.messages)
    labelled_p0 = [s for s in replay.submitted if s.message.intended == Urgency.P0.value]
    given: Counter[str] = Counter()
    waits: list[dict[str, Any]] = []
    paged = refused = 0
    for submitted in labelled_p0:
        record = replay.records.get(submitted.request_id or "")
        if record is None:  # intake refused it (the harness printed why): nobody was told
            refused += 1
            continue
        given[record.urgency] += 1
        wait = _wait(replay, calendar, record.id, notes_of.get(record.id, []), end_of_replay)
        if wait["ended_by"] == "paged" and wait["waited_s"] < PAGED_WITHIN_S:
            paged += 1
        else:
            waits.append({"id": submitted.message.label_id, "writer": submitted.message.writer, **wait})
    waits.sort(key=lambda w: (-w["waited_s"], w["id"]))
    total = sum(given.values())
    long_waits = [w for w in waits if w["waited_s"] > LONG_WAIT_S]
    return {
        "files": [str(p) for p in replay.options.messages],
        "messages": len(replay.messages),
        "writers": dict(sorted(writers.items())),
        "triage_model": _model(set(writers)),
        "emergencies": {
            "labelled_p0": total,
            "not_accepted": refused,
            "p0_recall": round(given[Urgency.P0.value] / total, 4) if total else None,
            "given": {u.value: given[u.value] for u in Urgency},
            "paged_within_minute": paged,
            "waited": len(waits),
            "waited_over_5_min": len(long_waits),
            "share_waited_over_5_min": round(len(long_waits) / total, 4) if total else None,
            "aim_share_waited_over_5_min": LONG_WAIT_AIM,
            "wait_s": _seconds([w["waited_s"] for w in waits]),
            "waits": waits,
        },
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def headline(labelled: dict[str, Any], shown: int = 12) -> list[str]:
    """The lines `relay simulate --messages` prints about the labelled emergencies."""
    model, p0 = labelled["triage_model"], labelled["emergencies"]
    writers = ", ".join(f"{w} ({n})" for w, n in labelled["writers"].items())
    read = model["writers_it_read"]
    lines = [
        f"labelled messages: {labelled['messages']} from {writers}; triage model {model['path']}"
        + (f" trained on {len(model['trained_on'])} writers" if model["loaded"] else " not loaded (rules alone)")
        + (f", and it read these writers: {', '.join(read)}" if read else ", none of these among them"),
    ]
    if not p0["labelled_p0"]:
        return [*lines, "labelled emergencies: none"]
    share = p0["share_waited_over_5_min"]
    lines += [
        f"labelled emergencies: {p0['labelled_p0']}, P0 recall {p0['p0_recall']:.1%}, given {p0['given']}; "
        f"paged within a minute: {p0['paged_within_minute']}; waited: {p0['waited']}, more than 5 minutes: "
        f"{p0['waited_over_5_min']} ({share:.1%}, aim <= {p0['aim_share_waited_over_5_min']:.0%}); waits "
        f"median {p0['wait_s']['median']} s, max {p0['wait_s']['max']} s"
        + (f"; refused at intake: {p0['not_accepted']}" if p0["not_accepted"] else ""),
    ]
    for wait in p0["waits"][:shown]:
        hours = "in school hours" if wait["in_school_hours"] else "out of school hours"
        lines.append(f"  {wait['id']}: given {wait['given']} at {wait['received'][:16]} ({hours}), waited "
                     f"{_minutes(wait['waited_s'])} until {wait['ended_by']} | {'; '.join(wait['reasons'])}")
    if len(p0["waits"]) > shown:
        lines.append(f"  ... and {len(p0['waits']) - shown} more in summary.json")
    return lines
