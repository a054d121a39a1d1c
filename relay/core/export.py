"""What a retention purge writes before it deletes: one gzipped JSON Lines file per school and run.

The file holds parents' messages and children's names and health details: it is written with mode
0600 under RELAY_RETENTION_EXPORT_DIR, for operators to move to the district's archive or delete
(README-ops.md, "Retention"). It is written to a temporary name, fsynced, then renamed, so that a
file under its final name is always whole; the purge deletes only after that.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def path_for(directory: Path, school_id: str, moment: float) -> Path:
    stamp = dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / school_id / f"retention-{stamp}.jsonl.gz"


def write(directory: Path, school_id: str, moment: float, lines: Iterable[dict[str, Any]]) -> Path:
    """Write `lines` whole and durably; returns the file (OSError: nothing written under the final name)."""
    final = path_for(directory, school_id, moment)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = final.with_name(final.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as packed:
            for line in lines:
                packed.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            packed.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def read(path: Path) -> list[dict[str, Any]]:
    """The lines of an export (operators, tests)."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
