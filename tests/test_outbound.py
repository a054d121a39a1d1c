"""Outbound addresses (DESIGN.md "Outbound addresses", issue 20): contact URLs may not reach loopback or
private addresses unless RELAY_WEBHOOK_ALLOW_PRIVATE lists them, link-local and cloud-metadata addresses
never; https:// is required except to an allowed range. Checked when a directory is configured and again
after DNS at every send (a name may rebind). No traffic leaves 127.0.0.1: other addresses are only
named, or reached through a resolver that answers with the local receiver's address."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support.spine import (
    ALLOW_LOOPBACK,
    RELAY,
    ROOT,
    Stack,
    WebhookReceiver,
    caller_token,
    free_port,
    relay_env,
    school_document,
    wait_until,
)

from adapters.base import AddressRefused, Message, Outcome, Reason
from adapters.webhook import WebhookChannel
from relay.base import outbound
from relay.cli.embedded import EmbeddedRedis
from routing.directory import School

NONE: tuple[outbound.Network, ...] = ()
LOOPBACK = outbound.parse_allowed("127.0.0.0/8")


@pytest.mark.parametrize(("address", "allowed", "refused"), [
    ("169.254.169.254", "", "cloud metadata"),
    ("169.254.169.254", "169.254.0.0/16", "cloud metadata"),  # never, whatever is listed
    ("::ffff:169.254.169.254", "", "cloud metadata"),
    ("fd00:ec2::254", "fd00::/8", "cloud metadata"),
    ("100.100.100.200", "100.64.0.0/10", "cloud metadata"),  # Alibaba Cloud's metadata service
    ("169.254.10.1", "169.254.0.0/16", "link-local"),
    ("fe80::1", "fe80::/10", "link-local"),
    ("127.0.0.1", "", "loopback or private"),
    ("::1", "", "loopback or private"),
    ("10.1.2.3", "", "loopback or private"),
    ("192.168.1.10", "10.0.0.0/8", "loopback or private"),
    ("0.0.0.0", "", "loopback or private"),
    ("10.1.2.3", "10.0.0.0/8", None),
    ("127.0.0.1", "127.0.0.0/8", None),
    ("::1", "::1/128", None),
    ("1.1.1.1", "", None),
])
def test_which_addresses_a_contact_may_reach(address: str, allowed: str, refused: str | None) -> None:
    reason = outbound.refusal(address, outbound.parse_allowed(allowed))
    assert (reason is None) if refused is None else (reason is not None and refused in reason), reason


def test_a_range_that_is_not_a_cidr_is_named() -> None:
    with pytest.raises(ValueError, match="'10.0.0.300/8' is not an address range"):
        outbound.parse_allowed("127.0.0.0/8, 10.0.0.300/8")


@pytest.mark.parametrize(("url", "allowed", "answer", "problem"), [
    ("https://hooks.example.cn/x", NONE, ["1.1.1.1"], None),
    ("http://hooks.example.cn/x", NONE, ["1.1.1.1"], "use https://"),  # plain http only to an allowed range
    ("http://hooks.school.lan/x", outbound.parse_allowed("10.0.0.0/8"), ["10.0.0.7"], None),
    ("https://hooks.example.cn/x", NONE, ["1.1.1.1", "10.0.0.7"], "resolves to 10.0.0.7"),
    ("https://metadata.example.cn/x", NONE, ["169.254.169.254"], "never allowed"),
    ("http://127.0.0.1:9/x", NONE, [], "loopback or private"),
    ("http://[::1]:9/x", NONE, [], "loopback or private"),
    ("https://hooks.example.cn/x", NONE, OSError, None),  # unknown here: every send checks again
    ("http://hooks.example.cn/x", NONE, OSError, "does not resolve"),
    ("ftp://hooks.example.cn/x", NONE, ["1.1.1.1"], "https://"),
])
def test_a_contact_url_is_checked_after_resolving_its_name(
    url: str, allowed: tuple[outbound.Network, ...], answer: list[str] | type[OSError], problem: str | None
) -> None:
    def resolver(host: str, port: int) -> list[str]:
        if not isinstance(answer, list):
            raise answer("no such name")
        return answer

    found = outbound.check_url(url, allowed, resolver)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_the_problem_names_the_contact_and_never_the_robot_token() -> None:
    document = school_document("t-out", "https://hooks.example.cn")
    nurse = next(s for s in document["staff"] if s["id"] == "nurse")
    nurse["contacts"] = [{"channel": "wecom", "userid": "LiuYi"},
                         {"channel": "dingtalk", "url": "http://169.254.169.254/robot/send?access_token=SECRET-TOKEN"}]
    problems = outbound.contact_problems(School.model_validate(document), NONE, resolver=lambda h, p: ["1.1.1.1"])
    assert [p.where for p in problems] == ["staff[nurse].contacts[1] (dingtalk)"]
    assert "刘校医（nurse）" in problems[0].message and "cloud metadata" in problems[0].message
    assert "SECRET-TOKEN" not in str(problems[0])


# --- at send time: the transport checks the address it connects to -------------------------------------


MESSAGE = Message(event="request.urgent", event_id="ev-1", attempt=1, sent_at="2026-11-25T10:00:00+08:00",
                  urgency="P0", title="三年级2班 张同学 身体不适（紧急）", body="…", link=None,
                  recipient={"id": "nurse", "name": "刘校医", "role": "nurse"})


def client(allowed: tuple[outbound.Network, ...], resolver: outbound.Resolve = outbound.resolve) -> httpx.Client:
    return httpx.Client(transport=outbound.Transport(allowed, httpx.Limits(), resolver), trust_env=False, timeout=5)


def test_the_transport_connects_to_the_address_it_checked(receiver: WebhookReceiver) -> None:
    port = receiver.port
    # A name no DNS knows: the request can only arrive if the transport connects to the resolver's checked answer.
    with client(LOOPBACK, lambda host, _: ["127.0.0.1"] if host == "hooks.school.lan" else []) as checked:
        path = f"/out-{uuid.uuid4().hex[:8]}"
        result = WebhookChannel(checked, "secret").send(MESSAGE, {"url": f"http://hooks.school.lan:{port}{path}"})
    assert result.outcome is Outcome.delivered, result
    assert receiver.wait_for(lambda p: p.path == path, 5, "the webhook")


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_send_time_for_good(receiver: WebhookReceiver) -> None:
    answers = iter([["1.1.1.1"], ["127.0.0.1"]])  # public when configured, loopback when sending
    port = receiver.port
    url = f"https://hooks.example.cn:{port}/rebind"
    assert outbound.check_url(url, NONE, lambda h, p: next(answers)) is None
    with client(NONE, lambda h, p: next(answers)) as checked:
        result = WebhookChannel(checked, "secret").send(MESSAGE, {"url": url})
    assert (result.outcome, result.reason, result.vendor_code) == (Outcome.permanent, Reason.client, "address_refused")
    assert "127.0.0.1" in result.detail and "hooks.example.cn" not in result.detail


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
                                 "http://100.100.100.200/latest/meta-data/", "http://localhost:9/"])
def test_metadata_and_loopback_are_refused_before_any_connection(url: str) -> None:
    with client(NONE) as checked, pytest.raises(AddressRefused):
        checked.post(url, content=b"{}")


def test_plain_http_to_a_public_address_is_refused_at_send_time() -> None:
    with client(NONE, lambda h, p: ["1.1.1.1"]) as checked, pytest.raises(AddressRefused, match="use https://"):
        checked.post("http://hooks.example.cn/x", content=b"{}")


# --- at configuration time: relay config check --------------------------------------------------------


def config_check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    clean.update(env)
    return subprocess.run([RELAY, "config", "check", str(path)], capture_output=True, text=True, env=clean,
                          cwd=ROOT, timeout=60)


def yaml_with(tmp_path: Path, url: str) -> Path:
    document = school_document("t-out", "https://1.1.1.1")  # the others: a public https receiver (never reached)
    nurse = next(s for s in document["staff"] if s["id"] == "nurse")
    nurse["contacts"] = [{"channel": "webhook", "url": url}]
    path = tmp_path / "school.yaml"
    path.write_text(yaml.safe_dump({"schools": [document]}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("url", "env", "problem"), [
    ("http://169.254.169.254/latest/meta-data/", {"RELAY_WEBHOOK_ALLOW_PRIVATE": "169.254.0.0/16"}, "cloud metadata"),
    ("http://10.1.2.3/hook", {}, "not listed in RELAY_WEBHOOK_ALLOW_PRIVATE"),
    ("http://1.1.1.1/hook", {}, "use https://"),
    ("http://10.1.2.3/hook", {"RELAY_WEBHOOK_ALLOW_PRIVATE": "10.0.0.0/8"}, None),
    ("https://1.1.1.1/hook", {}, None),
    ("https://1.1.1.1/hook", {"RELAY_WEBHOOK_ALLOW_PRIVATE": "10.0.0.0/33"}, "is not an address range"),
])
def test_config_check_names_the_refused_contact(tmp_path: Path, url: str, env: dict[str, str],
                                                problem: str | None) -> None:
    done = config_check(yaml_with(tmp_path, url), **env)
    if problem is None:
        assert done.returncode == 0, done.stdout + done.stderr
        return
    assert done.returncode == 1, done.stdout
    assert problem in done.stdout + done.stderr
    if "address range" not in problem:
        assert "staff[nurse].contacts[0] (webhook)" in done.stdout


# --- end to end: a worker whose ranges exclude the contact sends nothing there --------------------------


@pytest.fixture
def strict_worker(receiver: WebhookReceiver, tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """The API (and the directory) allow loopback; the worker's RELAY_WEBHOOK_ALLOW_PRIVATE does not: what a
    name that rebinds after the configuration check, or an operator narrowing the ranges, comes to."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = tmp_path / "school.yaml"
    config.write_text(yaml.safe_dump({"schools": [school_document(school_id, receiver.url)]}, allow_unicode=True),
                      encoding="utf-8")
    stack = Stack(server.url, relay_env(server.url, config, f"http://127.0.0.1:{free_port()}"), tmp_path)
    try:
        stack.start_api()
        stack.env = dict(stack.env, RELAY_WEBHOOK_ALLOW_PRIVATE="10.0.0.0/8")
        stack.ensure_workers(1)
        yield stack, school_id
    finally:
        stack.close()
        server.stop()


def test_a_worker_refuses_a_contact_outside_its_ranges_and_says_why(
    strict_worker: tuple[Stack, str], receiver: WebhookReceiver
) -> None:
    stack, school_id = strict_worker
    assert ALLOW_LOOPBACK["RELAY_WEBHOOK_ALLOW_PRIVATE"] not in stack.env["RELAY_WEBHOOK_ALLOW_PRIVATE"]
    headers = {"Authorization": f"Bearer {caller_token('parent', 'g1', school_id)}", "Idempotency-Key": uuid.uuid4().hex}
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        made = api.post("/v1/requests", json={"student_id": "s1", "text": "孩子在学校发烧了"}, headers=headers)
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]

    def failed() -> dict[str, object] | None:
        timeline = [json.loads(e) for e in stack.redis.lrange(f"relay:{school_id}:timeline:{request_id}", 0, -1)]
        return next((e for e in timeline if e["kind"] == "delivery_failed" and e.get("to") == "nurse"), None)

    entry = wait_until(failed, 10, "the nurse's delivery to be refused")
    assert entry["reason"] == "client" and entry["vendor_code"] == "address_refused"
    assert not receiver.received(lambda p: p.path == f"/{school_id}/nurse")
