"""The replay itself: parents write, the clock moves, staff answer, and everything is recorded.

The simulated clock jumps from one thing to the next — a parent's message, a staff action,
a due timer, the end of a day — and waits for the workers to finish what that moment calls
for before it moves on; while an emergency waits for a human it moves a minute at a time.
Parents post over HTTP with their own tokens, staff act through the staff API with theirs.
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from relay.base import store, tokens
from relay.base.directory import ConfigError
from relay.base.store import RequestRecord
from relay.cli.replay import corpus
from relay.cli.replay.messages import ParentMessage, generate
from relay.cli.replay.receiver import Notification, Receiver, webhook_contacts
from relay.cli.replay.stack import Stack, StackError
from relay.cli.replay.staff import Action, Plan, plan_for
from relay.pages.views import is_overdue
from routing.calendar import SchoolCalendar
from routing.directory import Directory, Role, School
from routing.validation import check_config

MESSAGE_OFFSET = 0.25  # parents write at whole seconds + 0.25: never at a timer's or a staff action's instant
TOKEN_TTL = 90 * 86400
MAX_DRAIN_TIMEOUTS = 5


@dataclass(frozen=True)
class Options:
    config: Path
    school: str | None = None
    start: dt.date = dt.date(2026, 9, 20)
    days: int = 7
    seed: int = 1
    classes: int | None = None
    workers: int = 2
    max_step: float = 60.0  # seconds of simulated time per step while an emergency waits for a human
    messages: tuple[Path, ...] = ()  # labelled JSON Lines (corpus.py) instead of the generated week


@dataclass
class Submitted:
    message: ParentMessage
    posted: float  # real time.time() just before the POST
    status: int
    request_id: str | None = None
    plan: Plan | None = None


@dataclass
class Replay:
    options: Options
    school: School
    messages: list[ParentMessage]
    submitted: list[Submitted] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    records: dict[str, RequestRecord] = field(default_factory=dict)
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    actions: list[tuple[Action, int]] = field(default_factory=list)  # (action, HTTP status)
    workload: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # day -> staff -> open/overdue
    dead_letters: int = 0
    duplicates: int = 0
    bad_signatures: int = 0
    drain_timeouts: int = 0
    steps: int = 0
    real_seconds: float = 0.0


def read_config(path: Path) -> tuple[Directory, dict[str, Any]]:
    """The configuration checked, and as plain data (to rewrite its contacts). libyaml when present:
    the example school's 1,200 students take seconds to parse in pure Python."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    directory, problems = check_config(copy.deepcopy(document))
    if directory is None:
        raise ConfigError(problems)
    return directory, document


def pick_school(path: Path, school_id: str | None) -> tuple[School, dict[str, Any]]:
    directory, document = read_config(path)
    school = directory.school(school_id) if school_id else directory.schools[0]
    if school is None:
        raise SystemExit(f"unknown school {school_id!r} in {path}")
    return school, document


class Simulation:
    def __init__(self, stack: Stack, school: School, replay: Replay, receiver: Receiver,
                 say: Callable[[str], None]) -> None:
        self.stack = stack
        self.school = school
        self.replay = replay
        self.receiver = receiver
        self.say = say
        self.calendar = SchoolCalendar(school)
        self.http = httpx.Client(base_url=stack.url, timeout=30.0)
        self.tokens: dict[tuple[str, str], str] = {}
        self.actions: list[tuple[float, int, Action]] = []
        self.waiting_p0: set[str] = set()
        self.next_message = 0
        zone = school.zone
        options = replay.options
        self.day_ends = [
            dt.datetime.combine(options.start + dt.timedelta(days=n + 1), dt.time(), zone).timestamp() - 0.75
            for n in range(options.days)
        ]

    def _token(self, kind: str, subject: str) -> str:
        if (kind, subject) not in self.tokens:
            self.tokens[kind, subject] = tokens.caller_token(kind, subject, self.school.id, [self.stack.secret_key],
                                                             TOKEN_TTL)
        return self.tokens[kind, subject]

    def _message_at(self, index: int) -> float:
        return self.replay.messages[index].at.timestamp() + MESSAGE_OFFSET

    def run(self) -> None:
        messages = self.replay.messages
        now = self.stack.now()
        reported_day = ""
        while self.next_message < len(messages) or self.actions:
            candidates = [self.actions[0][0]] if self.actions else []
            if self.next_message < len(messages):
                candidates.append(self._message_at(self.next_message))
            timer = self.stack.next_timer()
            if timer is not None:
                candidates.append(timer)
            if self.day_ends:
                candidates.append(self.day_ends[0])
            moment = min(candidates)
            if self.waiting_p0:
                moment = min(moment, now + self.replay.options.max_step)
            now = max(moment, now)
            self.stack.advance(now)
            self.replay.steps += 1
            if self.stack.drain_timeouts > MAX_DRAIN_TIMEOUTS:
                raise StackError(f"the workers stopped catching up with the clock (see {self.stack.workdir})")
            day = dt.datetime.fromtimestamp(now, self.school.zone).date().isoformat()
            if day != reported_day:
                reported_day = day
                self.say(f"  {day}: {self.next_message} messages and {len(self.receiver.notifications)} "
                         "notifications so far")
            while self.next_message < len(messages) and self._message_at(self.next_message) <= now:
                self._submit(messages[self.next_message], now)
                self.next_message += 1
            while self.actions and self.actions[0][0] <= now:
                _, _, action = heapq.heappop(self.actions)
                self._act(action)
            while self.day_ends and self.day_ends[0] <= now:
                self._snapshot(self.day_ends.pop(0))
            self.stack.drain(now)

    def _submit(self, message: ParentMessage, now: float) -> None:
        headers = {"Authorization": f"Bearer {self._token('parent', message.guardian_id)}",
                   "Idempotency-Key": f"replay-{self.replay.options.seed}-{message.index}"}
        body = {"student_id": message.student_id, "text": message.text}
        if message.category_hint:
            body["category_hint"] = message.category_hint
        for _ in range(50):
            posted = time.time()
            response = self.http.post("/v1/requests", json=body, headers=headers)
            if response.status_code != 429:  # a rate limit: the parent tries again a moment later
                break
            time.sleep(0.1)
        submitted = Submitted(message, posted, response.status_code)
        self.replay.submitted.append(submitted)
        if response.status_code not in (200, 201):
            self.say(f"  message {message.index}: HTTP {response.status_code} {response.text[:200]}")
            return
        submitted.request_id = str(response.json()["id"])
        record = store.load(self.stack.redis, self.school.id, submitted.request_id)
        if record is None:
            return
        received = dt.datetime.fromtimestamp(now, self.school.zone)
        submitted.plan = plan_for(record, self.school, self.calendar, received, self.replay.options.seed,
                                  message.index)
        for action in submitted.plan.actions:
            order = action.message * 4 + ("ack", "reply", "resolve").index(action.kind)  # ties: message order
            heapq.heappush(self.actions, (action.at, order, action))
        if record.urgency == "P0":
            self.waiting_p0.add(submitted.request_id)

    def _act(self, action: Action) -> None:
        # Messages are submitted in index order, one entry each: the index is the position.
        request_id = self.replay.submitted[action.message].request_id
        assert request_id is not None
        headers = {"Authorization": f"Bearer {self._token('staff', action.staff_id)}"}
        body: dict[str, Any] | None = {"text": action.text} if action.kind == "reply" else None
        if action.kind == "resolve" and action.text:
            body = {"note": action.text}
        response = self.http.post(f"/v1/requests/{request_id}/{action.kind}", json=body, headers=headers)
        self.replay.actions.append((action, response.status_code))
        if action.kind == "ack" or response.is_success:
            self.waiting_p0.discard(request_id)

    def _snapshot(self, moment: float) -> None:
        day = dt.datetime.fromtimestamp(moment, self.school.zone).date().isoformat()
        records = store.open_queue(self.stack.redis, self.school.id, limit=100_000)
        rows: dict[str, dict[str, int]] = {}
        for member in self.school.with_role(Role.academic_affairs):
            theirs = [r for r in records if r.owner == member.id]
            rows[member.id] = {"open": len(theirs), "overdue": sum(1 for r in theirs if is_overdue(r, moment))}
        self.replay.workload[day] = rows

    def collect(self) -> None:
        r = self.stack.redis
        for submitted in self.replay.submitted:
            if submitted.request_id is None:
                continue
            record = store.load(r, self.school.id, submitted.request_id)
            if record is not None:
                self.replay.records[record.id] = record
                self.replay.timelines[record.id] = store.load_timeline(r, self.school.id, record.id)
        self.replay.dead_letters = int(r.llen(f"relay:{self.school.id}:deadletters"))
        self.replay.notifications = self.receiver.snapshot()
        self.replay.duplicates = self.receiver.duplicates
        self.replay.bad_signatures = self.receiver.bad_signatures
        self.replay.drain_timeouts = self.stack.drain_timeouts


def run(options: Options, say: Callable[[str], None] = print, keep: bool = False,
        inspect: Callable[[Stack], None] | None = None) -> Replay:
    """Generate the week, replay it through a private Relay, and return everything recorded.

    `inspect` is called with the stack still running once the replay is done (tests look at the
    report pages of the replayed week); `keep` keeps the processes' logs."""
    started = time.monotonic()
    school, document = pick_school(options.config, options.school)
    if options.messages:
        messages = corpus.place(corpus.read(options.messages), school, options.start, options.days, options.seed,
                                options.classes)
    else:
        messages = generate(school, options.start, options.days, options.seed, options.classes)
    replay = Replay(options, school, messages)
    say(f"replay: {school.name} ({school.id}), {options.start} + {options.days} days, seed {options.seed}, "
        f"{len(messages)} messages")
    workdir = Path(tempfile.mkdtemp(prefix="relay-replay-"))
    receiver = Receiver(secrets.token_hex(16)).start()
    document = webhook_contacts(document, receiver.url, {school.id})
    start_clock = dt.datetime.combine(options.start, dt.time(), school.zone).timestamp()
    stack = Stack(workdir, document, school.id, options.workers, start_clock)
    failed = True
    try:
        stack.start(receiver.secret)
        simulation = Simulation(stack, school, replay, receiver, say)
        simulation.run()
        simulation.collect()
        if inspect is not None:
            inspect(stack)
        failed = False
    finally:
        stack.stop()
        receiver.close()
        if failed or keep:
            say(f"replay: logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    replay.real_seconds = time.monotonic() - started
    return replay
