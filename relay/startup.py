"""What `relay serve`, `relay worker` and `relay dev` do before they start."""

from __future__ import annotations

from pathlib import Path

from relay.directory import load_yaml, publish
from relay.log import log
from relay.runtime import Runtime


def publish_configured(runtime: Runtime, path: str | Path | None = None) -> dict[str, int]:
    """Publish RELAY_CONFIG (or `path`) as the current directory when it differs from what Redis holds."""
    source = path or runtime.settings.config
    if not source:
        return {}
    versions = publish(runtime.redis, load_yaml(source))
    runtime.directories.reload()
    log.info("directory_published", versions=versions)
    return versions
