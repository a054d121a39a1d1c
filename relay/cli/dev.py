"""`relay dev`: API, workers and timers on one machine, with an embedded Redis when none is reachable."""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from types import FrameType
from typing import TYPE_CHECKING

from relay.base.outbound import LOOPBACK
from relay.base.settings import STATE_DIR

if TYPE_CHECKING:
    from relay.base.runtime import Runtime

# The signals that stop `relay dev`: Ctrl-C, `kill`, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything starts: a busy port is said first, not after the banner."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT of the last run is no obstacle
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def die_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM when `relay dev` dies, even by SIGKILL, so nothing is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the signal handlers below still stop the children on SIGTERM and Ctrl-C


def _stop(signum: int, _: FrameType | None) -> None:
    # Unwinds into run_dev's `finally`, which stops the workers and the embedded Redis. Uvicorn hands the
    # signal back with raise_signal after its own graceful shutdown; with the default handler the process
    # would die right there, before the `finally`, and leave its children behind.
    raise SystemExit(128 + signum)


def run_dev(config: str | None, host: str, port: int, workers: int) -> int:
    try:
        listener = listen(host, port)
    except OSError as exc:
        busy = exc.errno == 98  # EADDRINUSE
        print(f"relay dev: cannot listen on {host}:{port}: "
              f"{'the port is already in use (another relay dev?)' if busy else exc.strerror or exc}; "
              "choose another with --port N", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    children: list[subprocess.Popen[bytes]] = []
    embedded_redis = None
    try:
        from relay.cli import embedded

        redis_url = os.environ.get("REDIS_URL")
        if os.environ.get("RELAY_REDIS_SENTINELS"):
            # The sentinels name the master (REDIS_URL gives password and database): nothing to embed.
            from relay.base.runtime import DEFAULT_REDIS_URL
            from relay.base.settings import get_settings
            from relay.cli.preflight import require_master

            if not require_master(get_settings(), "dev"):
                return 1
            redis_url = redis_url or DEFAULT_REDIS_URL
        elif not embedded.reachable(redis_url):
            if redis_url:
                print(f"REDIS_URL={redis_url} is not reachable: starting an embedded Redis instead", flush=True)
            embedded_redis = embedded.EmbeddedRedis(STATE_DIR / "redis", preexec=die_with_parent)
            embedded_redis.start()
            redis_url = embedded_redis.url
        assert redis_url is not None
        return _run(config, host, port, workers, listener, redis_url, embedded_redis is not None, children)
    finally:
        listener.close()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if embedded_redis:
            embedded_redis.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(config: str | None, host: str, port: int, workers: int, listener: socket.socket, redis_url: str,
         embedded: bool, children: list[subprocess.Popen[bytes]]) -> int:
    from relay.cli.paths import config_path as find_config

    config_path = find_config(config).resolve()
    env = dict(os.environ, REDIS_URL=redis_url, RELAY_CONFIG=str(config_path), RELAY_DEV_OUTBOX="1")
    if "PROMETHEUS_MULTIPROC_DIR" not in env and "relay.base.metrics" not in sys.modules:
        # One /metrics for the API and its workers: each process writes its counters into this run's directory.
        STATE_DIR.mkdir(exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=STATE_DIR)
        atexit.register(shutil.rmtree, env["PROMETHEUS_MULTIPROC_DIR"], True)
    env.setdefault("RELAY_PUBLIC_URL", f"http://{host}:{port}")
    # On one machine the receivers one tries Relay with (a local webhook, the outbox) are local:
    # loopback is allowed unless the variable says otherwise. Production allows no private range by default.
    env.setdefault("RELAY_WEBHOOK_ALLOW_PRIVATE", LOOPBACK)
    os.environ.update(env)  # this process serves the API with the same settings
    from relay.base.settings import get_settings

    get_settings.cache_clear()
    get_settings().signing_keys()  # makes the dev key now, so the workers and `relay token` find one

    import uvicorn

    from relay.app.factory import create_app
    from relay.base.directory import ConfigError
    from relay.base.runtime import get_runtime
    from relay.school.startup import publish_configured

    runtime = get_runtime()
    try:
        publish_configured(runtime, config_path)
    except ConfigError as exc:
        print(f"the configuration {config_path} has problems:\n{exc}", file=sys.stderr)
        return 1

    for _ in range(max(1, workers)):
        children.append(subprocess.Popen([sys.executable, "-m", "relay.cli.main", "worker"], env=env,
                                         preexec_fn=die_with_parent))
    base = runtime.settings.public_url.rstrip("/")
    school = runtime.directories.school_ids()[0]
    print(
        "\nRelay is running"
        f"\n  Redis:         {_where(runtime, redis_url, embedded)}"
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
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning", access_log=False))
    server.run(sockets=[listener])
    return 0


def _where(runtime: Runtime, redis_url: str, embedded: bool) -> str:
    """The banner's Redis line: the URL, or the master Sentinel names now (REDIS_URL may hold a password)."""
    if runtime.settings.redis_sentinels:
        from relay.base.runtime import master_address

        return (f"master {runtime.settings.redis_sentinel_master!r} at {master_address(runtime.redis)}, "
                f"through the sentinels {runtime.settings.redis_sentinels}")
    return f"{redis_url}{' (embedded, state in .relay/redis)' if embedded else ''}"
