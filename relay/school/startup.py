"""What `relay serve`, `relay worker` and `relay dev` do before they start."""

from __future__ import annotations

import hashlib
from pathlib import Path

from relay.base import keys
from relay.base.directory import as_written, load_yaml, publish_school
from relay.base.log import log
from relay.base.runtime import Runtime
from relay.base.store import text


def publish_configured(runtime: Runtime, path: str | Path | None = None, only: set[str] | None = None) -> dict[str, int]:
    """Publish RELAY_CONFIG (or `path`) for each school whose entry in the file changed since it was last published.

    The file seeds the directory; administrators then change it at run time (/admin, /v1/admin,
    `relay config apply`). A restart with the same file must not undo their changes, so a school
    is published from the file only when its entry differs from what the file said last time
    (or the school has no directory yet). `only`: the schools of this runtime's shard (the others are not
    its to keep).
    """
    source = path or runtime.settings.config
    if not source:
        return {}
    r = runtime.redis
    versions = {}
    for school in load_yaml(source).schools:
        if only is not None and school.id not in only:
            continue
        digest = hashlib.sha256(school.model_dump_json().encode()).hexdigest()
        seeded, current = r.mget([keys.directory_seeded(school.id), keys.directory_current(school.id)])
        if current is not None and seeded is not None and text(seeded) == digest:
            versions[school.id] = int(current)
            continue
        done = publish_school(r, school.id, as_written(school), by="RELAY_CONFIG", note=f"file {Path(source).name}")
        r.set(keys.directory_seeded(school.id), digest)
        versions[school.id] = done.version
    runtime.directories.reload()
    log.info("directory_published", versions=versions)
    return versions
