"""`relay worker` with one more line in the timer table, for the batch tests: the kind `probe|<name>`.

Its handler records each run (name, moment, the RQ job that ran it) and removes its timer, in one
transaction, as a real handler does. A probe whose hold flag is set stops in its first run, after
saying which process holds it, until the test releases it (or kills that process).

    python tests/timer_probe.py    # the worker (this folder is sys.path[0]); REDIS_URL and RELAY_* as for `relay worker`
"""

from __future__ import annotations

import os
import time

from rq import get_current_job

from relay.base.runtime import EMERGENCY, get_runtime
from relay.core.timers import disarm, kind

PROBE = kind("probe", "timer_probe.probe", EMERGENCY)


def fired_key(school_id: str) -> str:
    return f"relaytest:{school_id}:probe:fired"  # "<name> <started, epoch s> <job id>"


def hold_key(school_id: str, name: str) -> str:
    return f"relaytest:{school_id}:probe:hold:{name}"


def holder_key(school_id: str) -> str:
    return f"relaytest:{school_id}:probe:holder"  # the pid of the process holding a probe


def release_key(school_id: str, name: str) -> str:
    return f"relaytest:{school_id}:probe:release:{name}"


def probe(school_id: str, name: str) -> str:
    r = get_runtime().redis
    started = time.time()
    if r.delete(hold_key(school_id, name)):
        r.set(holder_key(school_id), os.getpid())
        # Short blocking reads: the runtime's connection has a two-second socket timeout.
        while not r.blpop([release_key(school_id, name)], timeout=1):
            pass
    job = get_current_job()
    with r.pipeline(transaction=True) as pipe:
        disarm(pipe, school_id, PROBE.id(name))
        pipe.rpush(fired_key(school_id), f"{name} {started:.6f} {job.id if job is not None else '-'}")
        pipe.execute()
    return "fired"


def main() -> None:
    from relay.cli.worker import run_worker

    run_worker()


if __name__ == "__main__":
    main()
