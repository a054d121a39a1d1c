"""structlog JSON events. Events carry ids (request, school, event), never message text, names or phones."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_FORBIDDEN = {"text", "name", "phone", "openid", "student_name", "guardian_name", "body", "token", "url",
              "code", "binding_code", "binding_token", "access_token", "refresh_token", "session_key"}


def _drop_personal(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # A safety net: a careless log call with personal fields loses them instead of leaking them.
    for key in _FORBIDDEN.intersection(event):
        event[key] = "[redacted]"
    return event


def configure(level: str = "info") -> None:
    # httpx logs full request URLs at INFO, and vendor URLs carry access tokens and secrets.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_personal,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("relay")
