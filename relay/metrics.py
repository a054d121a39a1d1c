"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set, API and worker processes share one view.

Labels carry urgencies, categories, channels and results: never personal data.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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
OUTBREAK_ALERTS = Counter("relay_outbreak_alerts_total", "Grouped alerts of contagious illness in one class")
DEAD_LETTERS = Counter("relay_dead_letters_total", "Notifications that exhausted every contact and retry")


def intake(urgency: str, category: str, seconds: float) -> None:
    REQUESTS.labels(urgency, category).inc()
    INTAKE_SECONDS.observe(seconds)


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


def dead_letter() -> None:
    DEAD_LETTERS.inc()


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
