"""Schools sharded across Redis servers: the map from school id to Redis, and a runtime per shard.

A district too large for one Redis lists its shards in the configuration file, beside `schools:`:

    shards:
      - {name: north, redis_url: "redis://redis-north:6379/0", schools: [hld-xc-01, hld-xc-02]}
      - {name: south, redis_url: "redis://redis-south:6379/0", schools: [hld-xc-03]}

Every key carries its school id and every transaction touches one school, so a shard is simply a
Runtime of its own (its Redis, its directory registry, its RQ queues) with the same settings but the
URL. Without a `shards:` map there is one shard, `DEFAULT_SHARD`, on REDIS_URL: exactly one Redis,
as before. A shard may name a `sentinel_master` instead of a plain Redis: the process's sentinels
(RELAY_REDIS_SENTINELS) find it, and its `redis_url` gives only the password and database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relay.base.runtime import Runtime, connect_from
from relay.base.settings import Settings
from routing.validation import Problem

DEFAULT_SHARD = "default"
_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Shard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME)
    redis_url: str | None = None  # the shard's Redis; its password and database number apply with Sentinel too
    sentinel_master: str | None = None  # the Sentinel master that holds this shard (RELAY_REDIS_SENTINELS)
    schools: tuple[str, ...] = Field(min_length=1)


class ShardError(Exception):
    """A shard map that cannot be used, or a shard name it does not have; the message says which."""


def problems_in(raw: Any, school_ids: list[str]) -> list[Problem]:
    """What is wrong with a file's `shards:` (absent: nothing): shapes, names, a school on none or on two."""
    if not isinstance(raw, dict) or raw.get("shards") is None:
        return []
    entries = raw["shards"]
    if not isinstance(entries, list) or not entries:
        return [Problem("shards", "must be a list of {name, redis_url, schools}, at least one")]
    problems = []
    shards = []
    for i, entry in enumerate(entries):
        try:
            shards.append(Shard.model_validate(entry))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                problems.append(Problem(f"shards[{i}]{'.' + where if where else ''}", error["msg"]))
            continue
        if not shards[-1].redis_url and not shards[-1].sentinel_master:
            problems.append(Problem(f"shards[{i}]", f"shard {shards[-1].name!r} names no redis_url"))
    for name, count in Counter(s.name for s in shards).items():
        if count > 1:
            problems.append(Problem("shards", f"shard name {name!r} is used {count} times"))
    homes: dict[str, list[str]] = {}
    for shard in shards:
        for school_id in shard.schools:
            homes.setdefault(school_id, []).append(shard.name)
    for school_id in school_ids:
        found = homes.get(school_id, [])
        if not found and not problems:
            problems.append(Problem("shards", f"school {school_id!r} is on no shard: add it to one shard's schools"))
        elif len(found) > 1:
            problems.append(Problem("shards", f"school {school_id!r} is on {len(found)} shards "
                                              f"({', '.join(found)}): a school lives in one Redis"))
    for school_id in sorted(set(homes) - set(school_ids)):
        problems.append(Problem("shards", f"school {school_id!r} is on shard {homes[school_id][0]!r} "
                                          "but not under schools:"))
    return problems


def read_map(path: str | Path) -> list[Shard]:
    """The shards a configuration file lists ([] without `shards:`); ShardError when the map is unusable."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ShardError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("shards") is None:
        return []
    schools = raw.get("schools")
    school_ids = [str(s["id"]) for s in (schools if isinstance(schools, list) else []) if isinstance(s, dict) and "id" in s]
    problems = problems_in(raw, school_ids)
    if problems:
        raise ShardError(f"{path}: " + "; ".join(str(p) for p in problems))
    return [Shard.model_validate(entry) for entry in raw["shards"]]


class Shards:
    """The runtimes of one process, by shard name, and which one holds each school."""

    def __init__(self, runtimes: dict[str, Runtime], homes: dict[str, str]) -> None:
        self.runtimes = runtimes
        self._homes = homes  # school id -> shard name; empty with a single shard
        self.default = next(iter(runtimes.values()))

    @property
    def single(self) -> bool:
        return len(self.runtimes) == 1 and not self._homes

    def for_school(self, school_id: str | None) -> Runtime | None:
        """The runtime that holds this school; with a single shard, that shard whatever the id."""
        if self.single:
            return self.default
        name = self._homes.get(school_id or "")
        return self.runtimes[name] if name else None

    def shard_of(self, school_id: str) -> str | None:
        return self._homes.get(school_id) if not self.single else DEFAULT_SHARD

    def schools_of(self, name: str) -> set[str] | None:
        """The schools a shard holds (None: the single shard, which holds whatever the file lists)."""
        return None if self.single else {s for s, n in self._homes.items() if n == name}

    def named(self, name: str) -> Runtime:
        if name not in self.runtimes:
            raise ShardError(f"no shard named {name!r}: the configuration has {', '.join(sorted(self.runtimes))}")
        return self.runtimes[name]

    @classmethod
    def one(cls, runtime: Runtime) -> Shards:
        return cls({DEFAULT_SHARD: runtime}, {})

    @classmethod
    def configured(cls, settings: Settings, single: Callable[[], Runtime] | None = None) -> Shards:
        """From RELAY_CONFIG's `shards:`; without one, the single shard (`single()`, or one on REDIS_URL)."""
        entries = read_map(settings.config) if settings.config else []
        if not entries:
            return cls.one(single() if single else Runtime(settings))
        runtimes = {shard.name: shard_runtime(settings, shard) for shard in entries}
        return cls(runtimes, {school_id: shard.name for shard in entries for school_id in shard.schools})


def shard_runtime(settings: Settings, shard: Shard) -> Runtime:
    """A runtime on the shard's Redis; everything else as the process is configured."""
    if shard.sentinel_master:
        # The shard's master, found through the process's sentinels (RELAY_REDIS_SENTINELS); redis_url gives
        # the password and the database.
        if not settings.redis_sentinels:
            raise ShardError(f"shard {shard.name!r} names Sentinel master {shard.sentinel_master!r}, but "
                             "RELAY_REDIS_SENTINELS is not set")
        own = settings.model_copy(update={"redis_url": shard.redis_url,
                                          "redis_sentinel_master": shard.sentinel_master})
    else:
        # A plain Redis: the process's sentinels (if any) are for REDIS_URL's master, not this shard.
        own = settings.model_copy(update={"redis_url": shard.redis_url, "redis_sentinels": None})
    return Runtime(own, connection=connect_from(own))


def for_worker(settings: Settings, name: str | None) -> Shard | None:
    """The shard `relay worker --shard NAME` serves; None without a map (today's single Redis)."""
    entries = read_map(settings.config) if settings.config else []
    if not entries:
        if name:
            raise ShardError(f"--shard {name}: the configuration ({settings.config or 'RELAY_CONFIG unset'}) has no "
                             "shards: map; without one there is a single Redis (REDIS_URL) and no --shard")
        return None
    names = ", ".join(e.name for e in entries)
    if not name:
        raise ShardError(f"the configuration lists shards ({names}): start each worker with --shard NAME")
    for entry in entries:
        if entry.name == name:
            return entry
    raise ShardError(f"no shard named {name!r}: the configuration has {names}")
