"""Lua scripts called by their SHA-1, in a pipeline too, and loaded again when Redis has forgotten them.

redis-py's own Script asks SCRIPT EXISTS before every pipeline that holds one: a round trip more than
intake can spend. Here a pipeline sends EVALSHA as it is; the rare NOSCRIPT (Redis restarted, a
failover to a replica that never saw the script) loads it and runs the pipeline again, which is safe
for the pipelines that use this (their other commands are reads, and a NOSCRIPT script did nothing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.client import Pipeline

T = TypeVar("T")
Arg = str | bytes | int | float


class Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    def call(self, connection: redis.Redis, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run it now: one round trip (two the first time on a Redis that has not seen it)."""
        return with_scripts(connection, [self], lambda: connection.evalsha(self.sha, len(keys), *keys, *args))

    def queue(self, pipe: Pipeline, keys: Sequence[Arg], args: Sequence[Arg]) -> None:
        """Queue it on a pipeline whose execution runs inside `with_scripts`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


def with_scripts(connection: redis.Redis, scripts: Sequence[Script], run: Callable[[], T]) -> T:
    """`run()`, and once more after loading the scripts if Redis answered NOSCRIPT."""
    try:
        return run()
    except redis.exceptions.NoScriptError:
        for script in scripts:
            connection.script_load(script.source)
        return run()
