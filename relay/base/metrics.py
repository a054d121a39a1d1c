"""Prometheus metrics: what happened (counters, histograms) and what is waiting (gauges read from Redis).

Counters and histograms are recorded where things happen, in API and worker processes.
Without PROMETHEUS_MULTIPROC_DIR (`relay dev`, `relay serve` on a laptop) each process
keeps them in memory and serves its own. With PROMETHEUS_MULTIPROC_DIR set *before the
process starts* to a writable directory private to one host or pod (never shared between
containers: files are named by pid), every process writes them there and any process's
/metrics adds them all up: a pod running several processes is scraped once. Counters of a
process that died are still counted.

Gauges of what is waiting (queue depths, open and overdue requests, dead letters, pending
timers, whether Redis answers, a school's missing holiday calendar) are not recorded anywhere: the collector that
`install_collectors` registers reads them from Redis at scrape time, a few O(1) commands
per school in one round trip. They are the same from every API replica; alert on
max() / min() over replicas, not sum().

Labels carry urgencies, categories, channels, queues, results and school ids: never personal data.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from relay.base import clock, keys
from relay.base.log import log
from routing import learned
from routing.calendar import missing_years

if TYPE_CHECKING:
    from relay.base.runtime import Runtime

# Read once, as prometheus_client does when it is imported: the mode cannot change in a running process.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)  # metrics below open their files at once

REQUESTS = Counter("relay_requests_received_total", "Requests accepted at intake", ["urgency", "category"])
INTAKE_SECONDS = Histogram(
    "relay_intake_seconds", "Time to classify, plan and store a request",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FIRST_DELIVERY_SECONDS = Histogram(
    "relay_first_delivery_seconds", "From intake to the first delivered notification", ["urgency"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DELIVERY_ATTEMPTS = Counter("relay_delivery_attempts_total", "Notification send attempts", ["channel", "result"])
ESCALATIONS = Counter("relay_escalation_steps_total", "Escalation steps taken", ["step"])
TIMER_LATENESS = Histogram(
    "relay_timer_lateness_seconds", "Timer firing minus due time",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TIMERS_OVERDUE = Counter(
    "relay_timers_overdue_total", "Timers found more than 2 s past due (a dead worker's, or a scheduler behind)"
)
EMERGENCIES_JOINED = Counter(
    "relay_emergency_messages_joined_total",
    "Emergency messages joined to the same guardian's open P0 about the same child instead of paging anew",
)
SECOND_OPINIONS = Counter(
    "relay_second_opinions_total",
    "A language model's second opinions on urgency, by outcome (raised, kept, timeout, refused, malformed, http_*)",
    ["outcome"],
)
OUTBREAK_ALERTS = Counter("relay_outbreak_alerts_total", "Grouped alerts of contagious illness in one class")
INTAKE_SHED = Counter(
    "relay_intake_shed_total",
    "Routine messages refused (503 with Retry-After) by an API process past RELAY_INTAKE_MAX_IN_FLIGHT",
)
DEAD_LETTERS = Counter(
    "relay_dead_letters_total", "Notifications that exhausted every contact and retry", ["urgency"]
)

# A timer this far past due and still unclaimed has no scheduler looking at it (claiming pushes it a lease ahead).
PAST_DUE_SECONDS = 2.0


def intake(urgency: str, category: str, seconds: float) -> None:
    REQUESTS.labels(urgency, category).inc()
    INTAKE_SECONDS.observe(seconds)


def intake_shed() -> None:
    INTAKE_SHED.inc()


def emergency_joined() -> None:
    EMERGENCIES_JOINED.inc()


def second_opinion(outcome: str) -> None:
    SECOND_OPINIONS.labels(outcome).inc()


def first_delivery(urgency: str, seconds: float) -> None:
    FIRST_DELIVERY_SECONDS.labels(urgency).observe(max(0.0, seconds))


def delivery_attempt(channel: str, result: str) -> None:
    DELIVERY_ATTEMPTS.labels(channel, result).inc()


def escalation_step(step: int) -> None:
    ESCALATIONS.labels(str(step)).inc()


def timer_lateness(seconds: float) -> None:
    TIMER_LATENESS.observe(seconds)


def timer_overdue() -> None:
    TIMERS_OVERDUE.inc()


def outbreak_alert() -> None:
    OUTBREAK_ALERTS.inc()


def dead_letter(urgency: str) -> None:
    DEAD_LETTERS.labels(urgency).inc()


# --- gauges of what is waiting, read from Redis at scrape time ------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StateCollector(Collector):
    """Queue depths, open / overdue requests, dead letters and timers per school, and whether Redis answers."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("relay_redis_up", "1 if this process reached Redis when scraped")
        try:
            families = self._read()
        except redis.RedisError as exc:
            log.warning("metrics_redis_unreachable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        r = self._runtime.redis
        queues = sorted(self._runtime.queues.items())
        schools = sorted(_text(s) for s in r.smembers(keys.SCHOOLS))
        now = time.time()
        pipe = r.pipeline(transaction=False)
        for _, queue in queues:
            pipe.llen(queue.key)
            pipe.zcard(queue.failed_job_registry.key)
            pipe.scard(WORKERS_BY_QUEUE_KEY % queue.name)
        for school in schools:
            pipe.zcard(keys.open_requests(school))
            pipe.zcount(keys.open_requests(school), "-inf", now)  # score: the next due time, epoch seconds
            pipe.llen(keys.dead_letters(school))
            pipe.zcard(keys.timers(school))
            pipe.zcount(keys.timers(school), "-inf", int((now - PAST_DUE_SECONDS) * 1000))  # score: epoch ms
        answers = iter(pipe.execute())

        depth = GaugeMetricFamily("relay_queue_depth", "Jobs waiting in an RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("relay_queue_failed_jobs", "Jobs in an RQ queue's failed registry",
                                   labels=["queue"])
        workers = GaugeMetricFamily("relay_workers", "Workers registered on an RQ queue", labels=["queue"])
        for name, _ in queues:
            depth.add_metric([name], next(answers))
            failed.add_metric([name], next(answers))
            workers.add_metric([name], next(answers))
        open_requests = GaugeMetricFamily("relay_open_requests", "Open requests", labels=["school"])
        overdue = GaugeMetricFamily("relay_overdue_requests", "Open requests past their next due time",
                                    labels=["school"])
        letters = GaugeMetricFamily("relay_dead_letters_waiting",
                                    "Dead letters waiting to be redriven or dropped", labels=["school"])
        pending = GaugeMetricFamily("relay_timers_pending", "Armed timers", labels=["school"])
        past_due = GaugeMetricFamily("relay_timers_past_due",
                                     f"Timers more than {PAST_DUE_SECONDS:g} s past due and not claimed",
                                     labels=["school"])
        for school in schools:
            for family in (open_requests, overdue, letters, pending, past_due):
                family.add_metric([school], next(answers))
        return [depth, failed, workers, open_requests, overdue, letters, pending, past_due, self._calendars(schools)]

    def _calendars(self, schools: list[str]) -> Metric:
        missing = GaugeMetricFamily(
            "relay_calendar_next_year_missing",
            "1 while a school plans a year whose official holidays nobody entered (chinese-calendar does not know "
            "it and the YAML's calendar: has no date in it): from November the next year, and the current year",
            labels=["school"])
        for school_id in schools:
            found = self._runtime.directories.school(school_id)
            if found is not None:
                school = found[1]
                missing.add_metric([school_id], 1 if missing_years(school, clock.now_in(school.zone).date()) else 0)
        return missing


class _Scrape(Collector):
    """What one scrape shows: this process's (or, multiprocess, this host's) metrics, then Redis state."""

    def __init__(self, recorded: Collector, state: Collector | None) -> None:
        self._recorded = recorded
        self._state = state

    def collect(self) -> Iterable[Metric]:
        yield from self._recorded.collect()
        yield _triage_model()
        if self._state is not None:
            yield from self._state.collect()


def _triage_model() -> Metric:
    """Whether this process triages with the learned model; 0 means the rules alone (file missing or corrupt)."""
    loaded = GaugeMetricFamily(
        "relay_triage_model_loaded", "1 if this process classifies with the learned triage model, 0 if rules alone"
    )
    loaded.add_metric([], 1 if learned.model_loaded() else 0)
    return loaded


_state: Collector | None = None
_multiprocess_registry: CollectorRegistry | None = None


def _recorded() -> CollectorRegistry:
    global _multiprocess_registry
    if not MULTIPROC_DIR:
        return REGISTRY
    if _multiprocess_registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
        _multiprocess_registry = registry
    return _multiprocess_registry


class _ByShard(Collector):
    """The state of several shards' Redis in one scrape: each sample labelled with its shard."""

    def __init__(self, shards: dict[str, StateCollector]) -> None:
        self._shards = shards

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for name, state in self._shards.items():
            for family in state.collect():
                samples = [s._replace(labels={**s.labels, "shard": name}) for s in family.samples]
                if family.name in merged:
                    merged[family.name].samples += samples
                else:
                    family.samples = samples
                    merged[family.name] = family
        yield from merged.values()


def install_collectors(runtime: Runtime, shards: dict[str, Runtime] | None = None) -> None:
    """Have /metrics report the state in this runtime's Redis (the last runtime installed wins), or in each
    shard's, with a `shard` label, when the process serves several."""
    global _state
    if shards and len(shards) > 1:
        _state = _ByShard({name: StateCollector(r) for name, r in shards.items()})
    else:
        _state = StateCollector(runtime)


def scrape_allowed(authorization: str | None, token: str | None) -> bool:
    """With RELAY_METRICS_TOKEN set, a scrape must carry it as a bearer token: queue depths, school ids
    and delivery failures are not for whoever reaches the API's port."""
    if not token:
        return True
    return hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())


def render() -> tuple[bytes, str]:
    return generate_latest(_Scrape(_recorded(), _state)), CONTENT_TYPE_LATEST


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics from a process without the API (a worker); Redis state is left to the API."""
    try:
        start_http_server(port, addr=host, registry=_recorded())
    except OSError as exc:  # a second worker on one host with the same port: it runs, unscraped
        log.warning("metrics_port_unavailable", port=port, error=str(exc))
        return
    log.info("metrics_serving", port=port)
