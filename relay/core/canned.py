"""Canned replies: defaults in relay/core/canned_replies.yaml, a school's own list in Redis when it has one."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import redis
import yaml
from pydantic import BaseModel, Field, ValidationError

from relay.base import keys
from relay.base.log import log

DEFAULTS = Path(__file__).parent / "canned_replies.yaml"
# What only staff can confirm, left for them to fill in: 【请填写：孩子现在的情况】 / [fill in: ...].
PLACEHOLDER = re.compile(r"【请填写[^】]*】|\[fill in[^\]]*\]")


def unfilled(text: str) -> bool:
    """True when a reply still holds a canned reply's placeholder."""
    return bool(PLACEHOLDER.search(text))


class CannedReply(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    zh: str = Field(min_length=1, max_length=2000)
    en: str = Field(min_length=1, max_length=2000)
    categories: list[str] = Field(default_factory=list)

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


def _parse(items: object) -> list[CannedReply]:
    if not isinstance(items, list):
        raise ValueError("canned replies must be a list")
    return [CannedReply.model_validate(item) for item in items]


@lru_cache(maxsize=1)
def defaults() -> tuple[CannedReply, ...]:
    try:
        document = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8")) or {}
        return tuple(_parse(document.get("replies", [])))
    except (OSError, yaml.YAMLError, ValueError, ValidationError) as exc:
        log.warning("canned_replies_unreadable", error=type(exc).__name__)
        return ()


def for_school(connection: redis.Redis, school_id: str, category: str | None = None) -> list[CannedReply]:
    """The school's list (or the defaults), those made for `category` first."""
    replies = list(defaults())
    raw = connection.get(keys.canned_replies(school_id))
    if raw is not None:
        try:
            replies = _parse(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            log.warning("canned_replies_invalid", school_id=school_id, error=type(exc).__name__)
    if category:
        replies.sort(key=lambda reply: category not in reply.categories)
    return replies


def set_for_school(connection: redis.Redis, school_id: str, replies: list[dict[str, object]]) -> None:
    """Replace a school's canned replies (validated first); an empty list goes back to the defaults."""
    checked = _parse(replies)
    if not checked:
        connection.delete(keys.canned_replies(school_id))
        return
    connection.set(keys.canned_replies(school_id), json.dumps([r.model_dump() for r in checked], ensure_ascii=False))
