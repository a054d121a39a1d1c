"""What the spine's tests share (conftest.py holds only the fixtures): a real Redis, `relay serve` and
`relay worker` as real subprocesses, and a local webhook receiver over a real socket.

Isolation without FLUSHALL: on a shared Redis the session leases a logical database of its own
(see `lease_database`), every test gets its own school ids ("t-" + 8 hex) and the session its own
RQ queue prefix; at the end the session deletes the keys of the schools and queues it made.
Nothing here sleeps for a fixed time: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis
import yaml
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError

from relay.base import tokens
from relay.base.directory import load_yaml, publish
from relay.cli import embedded

ROOT = Path(__file__).resolve().parents[2]
RELAY = str(Path(sys.executable).parent / "relay")
SECRET_KEY = "test-secret-" + uuid.uuid4().hex
WEBHOOK_SECRET = "test-webhook-" + uuid.uuid4().hex
QUEUE_PREFIX = "relaytest-" + uuid.uuid4().hex[:8]
# The local vendor servers and webhook receivers listen on 127.0.0.1: contact URLs may reach loopback
# (relay/base/outbound.py refuses it otherwise), in this process (publish, roster checks) and every one it starts.
ALLOW_LOOPBACK = {"RELAY_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}
os.environ.update(ALLOW_LOOPBACK)

# A test school's SLA: long P0 clocks, so no stray escalation fires during a test that does not ask for one.
QUIET_SLA: dict[str, Any] = {
    "P0": {"ack_within": "10m", "resolve_within": "2h", "escalation": [{"after": "10m", "notify": ["role:duty_leader"]}]},
}

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# The webhook receiver ---------------------------------------------------------------------------


@dataclass
class Post:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered (or will answer, for a held POST)
    at: float  # time.monotonic() on arrival
    held: bool = False

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str | None:
        try:
            return str(self.json().get("event_id"))
        except (ValueError, AttributeError):
            return None


@dataclass
class Hold:
    """The next POST to a path waits (the sender is mid-send) until `release()`."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    post: Post | None = None

    def release(self) -> None:
        self.released.set()


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records each POST; it can fail, hold, go down and come back."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.port = 0
        self._changed = threading.Condition()
        self._scripts: dict[str, list[int]] = {}
        self._holds: dict[str, Hold] = {}
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listen (again, on the same port once it had one)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, hold = receiver._decide(self.path)
                post = Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status,
                            time.monotonic(), held=hold is not None)
                receiver._record(post)
                if hold is not None:
                    hold.post = post
                    hold.arrived.set()
                    hold.released.wait(timeout=30)
                answer = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"scripted"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender is gone (killed mid-send)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        """Stop listening: senders get connection refused until `up()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        for hold in list(self._holds.values()):
            hold.release()
        self.down()

    def answer(self, path: str, *statuses: int) -> None:
        """The next POSTs to `path` are answered with these statuses, in order; then 200."""
        with self._changed:
            self._scripts[path] = list(statuses)

    def hold_next(self, path: str) -> Hold:
        hold = Hold()
        with self._changed:
            self._holds[path] = hold
        return hold

    def _decide(self, path: str) -> tuple[int, Hold | None]:
        with self._changed:
            script = self._scripts.get(path)
            status = script.pop(0) if script else 200
            return status, self._holds.pop(path, None)

    def _record(self, post: Post) -> None:
        with self._changed:
            self.posts.append(post)
            self._changed.notify_all()

    def received(self, predicate: Callable[[Post], bool] = lambda _: True) -> list[Post]:
        with self._changed:
            return [p for p in self.posts if predicate(p)]

    def wait_for(self, predicate: Callable[[Post], bool], timeout: float = 10.0, what: str = "a POST") -> Post:
        """The first POST (already received or still to come) that matches."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for post in self.posts:
                    if predicate(post):
                        return post
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(p.path, p.status, p.event_id) for p in self.posts[-10:]]
                    raise AssertionError(f"no {what} within {timeout}s; last POSTs: {seen}")
                self._changed.wait(left)


# Redis --------------------------------------------------------------------------------------------


LEASE_KEY = "relaytest:lease:db{}"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def lease_database(url: str) -> tuple[str, Callable[[], None]] | None:
    """A logical database of a shared Redis for this session alone, or None when none is free.

    Unique school ids and queue prefixes are not enough on a shared Redis: every worker's timer
    scheduler polls every school in `relay:schools`, so two concurrent sessions (two engineers, or
    CI jobs) would fire each other's retries and escalations into their own queues, signed with
    their own webhook secret. A database of one's own keeps each session's timers to its workers.
    """
    # The leases live in database 0 whatever `url` names: a module that leases a second database from its
    # session's (test_channels_e2e) must see every other session's leases, not an empty key space.
    base_db = int(redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0))
    parts = urlsplit(url)
    shared = redis.Redis.from_url(urlunsplit((parts.scheme, parts.netloc, "/0", parts.query, parts.fragment)))
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    for db in range(1, 16):
        if db == base_db or not shared.set(LEASE_KEY.format(db), token, nx=True, ex=2 * 3600):
            continue
        leased = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
        if not embedded.reachable(leased):  # a server (or proxy) with one database only
            shared.eval(_RELEASE, 1, LEASE_KEY.format(db), token)
            return None

        def release(key: str = LEASE_KEY.format(db)) -> None:
            shared.eval(_RELEASE, 1, key, token)

        return leased, release
    return None


def delete_school_keys(connection: redis.Redis, school_ids: list[str]) -> None:
    """Remove what the tests' schools left behind (never anything else)."""
    for school_id in school_ids:
        connection.srem("relay:schools", school_id)
        batch = list(connection.scan_iter(match=f"relay:{school_id}:*", count=500))
        for start in range(0, len(batch), 500):
            connection.delete(*batch[start:start + 500])


def request_keys(connection: redis.Redis, school_id: str) -> list[str]:
    return sorted(k.decode() for k in connection.scan_iter(match=f"relay:{school_id}:request:*", count=1000))


# School configuration -----------------------------------------------------------------------------


STAFF = {
    "aa": ("王老师", ["academic_affairs"]),
    "aa2": ("赵老师", ["academic_affairs"]),
    "nurse": ("刘校医", ["nurse"]),
    "safety": ("陈安全员", ["safety_officer"]),
    "duty": ("周值班", ["duty_leader"]),
    "principal": ("马校长", ["principal"]),
    "hr": ("李老师", ["homeroom"]),
}


def school_document(
    school_id: str,
    receiver_url: str,
    *,
    sla: dict[str, Any] | None = None,
    contacts: dict[str, list[dict[str, Any]]] | None = None,
    owner_absent: bool = False,
    roll_call: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One small school: every staff member reachable by webhook at <receiver>/<school>/<staff>."""
    contacts = contacts or {}
    staff = []
    for staff_id, (name, roles) in STAFF.items():
        member: dict[str, Any] = {
            "id": staff_id,
            "name": name,
            "roles": roles,
            "contacts": contacts.get(staff_id) or [{"channel": "webhook", "url": f"{receiver_url}/{school_id}/{staff_id}"}],
        }
        if staff_id == "aa":
            member["backup"] = "aa2"
            member["absent"] = owner_absent
        staff.append(member)
    return {
        "id": school_id,
        "name": f"测试小学 {school_id}",
        "timezone": "Asia/Shanghai",
        "phone": "0429-5123456",
        "sla": sla if sla is not None else QUIET_SLA,
        "staff": staff,
        "classes": [{"id": "c1", "name": "三年级2班", "academic_affairs": "aa", "homeroom": "hr"}],
        "students": [
            {"id": "s1", "name": "张小明", "class_id": "c1", "guardians": [{"id": "g1", "name": "张妈妈", "phone": "+8613800000001"}]},
            {"id": "s2", "name": "张小红", "class_id": "c1", "guardians": [{"id": "g1", "name": "张妈妈", "phone": "+8613800000001"}]},
            {"id": "s3", "name": "李小华", "class_id": "c1", "guardians": [{"id": "g2", "name": "李爸爸", "phone": "+8613800000002"}]},
        ],
    } | ({"roll_call": roll_call} if roll_call is not None else {})


def write_school_yaml(path: Path, school_id: str, receiver_url: str, *, other_school_id: str | None = None,
                      **options: Any) -> Path:
    """A YAML with the school (and a second school for cross-school checks)."""
    schools = [school_document(school_id, receiver_url, **options)]
    if other_school_id:
        schools.append(school_document(other_school_id, receiver_url))
    path.write_text(yaml.safe_dump({"schools": schools}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# Processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def relay_env(redis_url: str, config: Path, public_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        REDIS_URL=redis_url,
        RELAY_CONFIG=str(config),
        RELAY_SECRET_KEY=SECRET_KEY,
        RELAY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        RELAY_QUEUE_PREFIX=QUEUE_PREFIX,
        RELAY_PUBLIC_URL=public_url,
        RELAY_RETRY_BASE_SECONDS="0.2",
        RELAY_RETRY_CAP_SECONDS="2",
        RELAY_DELIVERY_LEASE_SECONDS="2",
        RELAY_SEND_TIMEOUT_SECONDS="1",
        RELAY_LOG_LEVEL="info",
        # Every test posts from 127.0.0.1: the limiter has its own tests (test_trust_limits.py).
        RELAY_RATE_LIMIT_GUARDIAN="100000/minute",
        RELAY_RATE_LIMIT_IP="100000/minute",
        PYTHONUNBUFFERED="1",
        **ALLOW_LOOPBACK,
    )
    return env


def start_api(env: dict[str, str], log_dir: Path, port: int | None = None,
              options: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """`relay serve` on a free port (with more `options`, e.g. --workers 2); returns once /readyz answers 200."""
    port = port or free_port()
    log = log_dir / f"api-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([RELAY, "serve", "--host", "127.0.0.1", "--port", str(port), *options], env=env,
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url, log, "relay serve")
    return process, url


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, what: str, timeout: float = 30) -> None:
    """Until `url`/readyz answers 200; fails with the log's tail if the process exits first."""

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited ({process.returncode}):\n{log_tail(log)}")
        try:
            return httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout, f"{what} to be ready", interval=0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Stack:
    """The session's API and workers against one Redis, and the schools its tests made."""

    def __init__(self, redis_url: str, env: dict[str, str], log_dir: Path, connection: redis.Redis | None = None) -> None:
        self.redis_url = redis_url
        self.redis = connection or redis.Redis.from_url(redis_url)  # a Sentinel client follows the master
        self.env = env
        self.log_dir = log_dir
        self.api: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_command = [RELAY, "worker"]  # or a `relay worker` with more timer kinds (tests/timer_probe.py)
        self.school_ids: list[str] = []
        self.queues = [Queue(f"{QUEUE_PREFIX}-{name}", connection=self.redis) for name in ("emergency", "urgent", "routine")]

    def start_api(self) -> None:
        self.api, self.url = start_api(self.env, self.log_dir, port=int(self.env["RELAY_PUBLIC_URL"].rsplit(":", 1)[1]))

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            # Its own process group: kill9 takes any job process it forked along with it.
            process = subprocess.Popen(self.worker_command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.workers.append(process)

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"relay worker exited ({process.returncode}):\n{log_tail(log)}")
            return any(w.name.endswith(f"-{process.pid}") for w in Worker.all(connection=self.redis, queue=self.queues[0]))

        wait_until(registered, 30, "relay worker to register", interval=0.05)
        return process

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def ensure_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        while len(self.live_workers()) < count:
            self.start_worker()
        return self.live_workers()

    def busy_with(self, args: tuple[str, ...]) -> int | None:
        """The pid of the live worker whose current job was called with `args`."""
        live = {w.pid for w in self.live_workers()}
        for worker in Worker.all(connection=self.redis, queue=self.queues[0]):
            pid = int(worker.name.rsplit("-", 1)[1])
            try:
                job = worker.get_current_job()
            except NoSuchJobError:  # finished (and deleted: result_ttl=0) between the listing and the fetch
                continue
            if pid in live and job is not None and tuple(job.args) == args:
                return pid
        return None

    def kill9(self, pid: int) -> None:
        os.killpg(pid, signal.SIGKILL)
        for worker in self.workers:
            if worker.pid == pid:
                worker.wait(timeout=5)

    def close(self) -> None:
        for process in self.workers + ([self.api] if self.api else []):
            stop(process)
        delete_school_keys(self.redis, self.school_ids)
        self.forget_rq()

    def forget_rq(self) -> None:
        """RQ's traces of this session: its queues' jobs and registries, and its (also killed) workers."""
        for queue in self.queues:
            for registry in (queue.started_job_registry, queue.failed_job_registry, queue.finished_job_registry):
                for job_id in registry.get_job_ids(cleanup=False):
                    self.redis.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
            queue.delete(delete_jobs=True)
        for key in list(self.redis.scan_iter(match=f"*{QUEUE_PREFIX}*", count=500)):
            self.redis.delete(key)
        for process in self.workers:
            worker_key = f"rq:worker:relay-{socket.gethostname()}-{process.pid}"
            self.redis.delete(worker_key, f"{worker_key}:executions")
            self.redis.srem("rq:workers", worker_key)


# Pages ----------------------------------------------------------------------------------------------


def staff_page_session(client: Any, token: str, next_path: str | None = None) -> Any:
    """Start a page session from a staff bearer token as an operator does: open
    /staff/login?token=..., press the button (a POST with the form's CSRF token). `client` is an
    httpx.Client or a TestClient; it keeps the cookies. Returns the POST's answer (303 to the console)."""
    shown = client.get("/staff/login", params={"token": token, **({"next": next_path} if next_path else {})})
    assert shown.status_code == 200, shown.text
    found = re.search(r'name="csrf" value="([^"]+)"', shown.text)
    assert found is not None, shown.text
    return client.post("/staff/login/token", data={"csrf": found.group(1), "token": token, "next": next_path or ""},
                       follow_redirects=False)


# Schools of one test ------------------------------------------------------------------------------


def caller_token(kind: str, subject: str, school_id: str | None, key: str = SECRET_KEY, ttl: int = 3600) -> str:
    return tokens.caller_token(kind, subject, school_id, [key], ttl)


@dataclass
class School:
    """One test's school (and its sibling school), published to the running stack."""

    id: str
    other_id: str
    stack: Stack
    receiver_url: str
    client: httpx.Client

    def path(self, staff_id: str) -> str:
        return f"/{self.id}/{staff_id}"

    def parent(self, guardian_id: str = "g1") -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token('parent', guardian_id, self.id)}"}

    def staff(self, staff_id: str = "aa", school_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token('staff', staff_id, school_id or self.id)}"}

    def submit(self, text: str, student_id: str = "s1", guardian_id: str = "g1", key: str | None = None,
               **extra: Any) -> httpx.Response:
        headers = self.parent(guardian_id)
        headers["Idempotency-Key"] = key or uuid.uuid4().hex
        return self.client.post("/v1/requests", json={"student_id": student_id, "text": text, **extra}, headers=headers)

    def request_keys(self) -> list[str]:
        return request_keys(self.stack.redis, self.id)

    def timeline(self, request_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.stack.redis.lrange(f"relay:{self.id}:timeline:{request_id}", 0, -1)]

    def record(self, request_id: str) -> dict[str, Any]:
        raw = self.stack.redis.get(f"relay:{self.id}:request:{request_id}")
        assert raw is not None, f"request {request_id} is not stored"
        data: dict[str, Any] = json.loads(raw)
        return data

    def wait_timeline(self, request_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0,
                      what: str = "a timeline entry") -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.timeline(request_id) if predicate(e)), None)

        try:
            return wait_until(found, timeout, what, interval=0.05)
        except AssertionError as exc:
            kinds = [(e["kind"], e.get("event_id"), e.get("reason")) for e in self.timeline(request_id)]
            raise AssertionError(f"{exc}; timeline: {kinds}") from None


class Schools:
    def __init__(self, stack: Stack, receiver: WebhookReceiver, base: Path) -> None:
        self.stack = stack
        self.receiver = receiver
        self.base = base
        self.client = httpx.Client(base_url=stack.url, timeout=10)

    def new(self, receiver_url: str | None = None, **options: Any) -> School:
        school_id = "t-" + uuid.uuid4().hex[:8]
        other_id = school_id + "-b"
        receiver_url = receiver_url or self.receiver.url
        path = write_school_yaml(self.base / f"{school_id}.yaml", school_id, receiver_url, other_school_id=other_id,
                                 **options)
        self.stack.school_ids += [school_id, other_id]
        publish(self.stack.redis, load_yaml(path))
        school = School(school_id, other_id, self.stack, receiver_url, self.client)
        # The API reads directories through its refreshing snapshot cache: wait until it knows both schools.
        for sid in (school_id, other_id):
            wait_until(lambda sid=sid: self.client.get("/v1/queue", headers=school.staff("aa", sid)).status_code == 200,
                       10, f"the API to know school {sid}", interval=0.05)
        return school


# A stack of one's own ------------------------------------------------------------------------------

# A burst from one guardian must not meet the per-guardian rate limit where that is not what is tested.
NO_LIMITS = {"RELAY_RATE_LIMIT_GUARDIAN": "100000/minute", "RELAY_RATE_LIMIT_IP": "100000/minute"}


@contextmanager
def private_stack(base: Path, receiver: WebhookReceiver, server: embedded.EmbeddedRedis, workers: int,
                  **env: str) -> Iterator[tuple[Stack, Schools]]:
    """`relay serve` and `workers` × `relay worker` against `server` (started and stopped by the caller)."""
    config = write_school_yaml(base / "school.yaml", "t-" + uuid.uuid4().hex[:8], receiver.url)
    stack = Stack(server.url, relay_env(server.url, config, f"http://127.0.0.1:{free_port()}") | NO_LIMITS | env,
                  base)
    made: Schools | None = None
    try:
        stack.start_api()
        stack.ensure_workers(workers)
        made = Schools(stack, receiver, base)
        yield stack, made
    finally:
        if made is not None:
            made.client.close()
        for process in stack.workers + ([stack.api] if stack.api else []):
            stop(process)  # the Redis is ours alone: nothing to clean up in it
