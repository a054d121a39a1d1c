"""`relay dev`: API, workers and timers on one machine, with an embedded Redis when none is reachable."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from relay.outbound import LOOPBACK
from relay.settings import STATE_DIR


def run_dev(config: str | None, host: str, port: int, workers: int) -> int:
    from relay import embedded

    redis_url = os.environ.get("REDIS_URL")
    embedded_redis = None
    if not embedded.reachable(redis_url):
        if redis_url:
            print(f"REDIS_URL={redis_url} is not reachable: starting an embedded Redis instead", flush=True)
        embedded_redis = embedded.EmbeddedRedis(STATE_DIR / "redis").start()
        redis_url = embedded_redis.url
    assert redis_url is not None

    from relay.cli import _config_path

    config_path = _config_path(config).resolve()
    env = dict(os.environ, REDIS_URL=redis_url, RELAY_CONFIG=str(config_path), RELAY_DEV_OUTBOX="1")
    if "PROMETHEUS_MULTIPROC_DIR" not in env and "relay.metrics" not in sys.modules:
        # One /metrics for the API and its workers: each process writes its counters into this run's directory.
        STATE_DIR.mkdir(exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=STATE_DIR)
        atexit.register(shutil.rmtree, env["PROMETHEUS_MULTIPROC_DIR"], True)
    env.setdefault("RELAY_PUBLIC_URL", f"http://{host}:{port}")
    # On one machine the receivers one tries Relay with (a local webhook, the outbox) are local:
    # loopback is allowed unless the variable says otherwise. Production allows no private range by default.
    env.setdefault("RELAY_WEBHOOK_ALLOW_PRIVATE", LOOPBACK)
    os.environ.update(env)  # this process serves the API with the same settings
    from relay.settings import get_settings

    get_settings.cache_clear()

    from relay.app import create_app
    from relay.directory import ConfigError
    from relay.runtime import get_runtime
    from relay.startup import publish_configured

    runtime = get_runtime()
    try:
        publish_configured(runtime, config_path)
    except ConfigError as exc:
        print(f"the configuration {config_path} has problems:\n{exc}", file=sys.stderr)
        if embedded_redis:
            embedded_redis.stop()
        return 1

    children = [
        subprocess.Popen([sys.executable, "-m", "relay.cli", "worker"], env=env) for _ in range(max(1, workers))
    ]
    base = runtime.settings.public_url.rstrip("/")
    school = runtime.directories.school_ids()[0]
    print(
        "\nRelay is running"
        f"\n  Redis:         {redis_url}{' (embedded, state in .relay/redis)' if embedded_redis else ''}"
        f"\n  Configuration: {config_path} (school {school})"
        f"\n  API docs:      {base}/docs"
        f"\n  Parent page:   {base}/p"
        f"\n  Staff queue:   {base}/staff  (sign-in links land in the dev outbox; or open"
        f"\n                 {base}/staff/login?token=$(relay token staff STAFF_ID))"
        f"\n  Nurse console: {base}/nurse"
        f"\n  Administration: {base}/admin   Weekly report: {base}/staff/report"
        f"\n  Dev outbox:    {base}/dev/outbox"
        f"\n  Tokens:        relay token parent GUARDIAN_ID\n",
        flush=True,
    )
    try:
        import uvicorn

        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning", access_log=False)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded_redis:
            embedded_redis.stop()
    return 0



