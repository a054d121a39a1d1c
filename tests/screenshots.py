"""Screenshots of every page, desktop (1280 wide) and phone (390 wide), into docs/screenshots/.

Not part of `make test`. Run it with a Redis on REDIS_URL (default 127.0.0.1:6379), Debian's chromium
and Playwright installed, and a CJK font (fonts-noto-cjk) so that the Chinese is legible:

    .venv/bin/python tests/screenshots.py

It starts `relay serve` and one `relay worker` with a school of its own, makes a few requests
(one of them overdue), signs staff in with bearer tokens, and removes its keys afterwards.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import ViewportSize, sync_playwright  # noqa: E402
from support.spine import Stack, WebhookReceiver, caller_token, free_port, relay_env, school_document  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
ALL_WEEK = {day: "00:00-23:59" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# P1 answers are due in seconds here, so that the queue shows an overdue request.
SLA = {
    "P0": {"ack_within": "10m", "resolve_within": "2h", "escalation": [{"after": "10m", "notify": ["role:duty_leader"]}]},
    "P1": {"ack_within": "3s", "resolve_within": "4h"},
}


def submit(url: str, school_id: str, guardian: str, student: str, text: str, hint: str | None = None) -> str:
    body: dict[str, Any] = {"student_id": student, "text": text}
    if hint:
        body["category_hint"] = hint
    response = httpx.post(f"{url}/v1/requests", json=body, timeout=10, headers={
        "Authorization": f"Bearer {caller_token('parent', guardian, school_id)}", "Idempotency-Key": uuid.uuid4().hex})
    response.raise_for_status()
    return str(response.json()["id"])


def shoot(page: Any, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print("wrote", OUT / f"{name}.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="relay-shots-"))
    school_id = "shots-" + uuid.uuid4().hex[:6]
    receiver = WebhookReceiver()  # staff are notified by webhook: a local receiver that answers 200
    document = school_document(school_id, receiver.url, sla=SLA)
    document["hours"] = ALL_WEEK
    config = base / "school.yaml"
    config.write_text(yaml.safe_dump({"schools": [document]}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env = relay_env(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), config, f"http://127.0.0.1:{free_port()}")
    stack = Stack(env["REDIS_URL"], env, base)
    stack.school_ids.append(school_id)
    try:
        stack.start_api()
        stack.ensure_workers(1)
        url = stack.url
        fall = submit(url, school_id, "g1", "s1", "孩子在学校摔倒了头流血")
        submit(url, school_id, "g2", "s3", "今天下午奶奶来接孩子，请老师放行", "接送")
        homework = submit(url, school_id, "g1", "s2", "数学作业第三题不会做，请老师讲一下", "作业")
        submit(url, school_id, "g1", "s2", "孩子明天发烧，请假一天", "请假")
        dizzy = submit(url, school_id, "g2", "s3", "孩子说头晕，想吐，脸色发白")
        knee = submit(url, school_id, "g1", "s2", "孩子在学校摔倒了，膝盖擦破在流血")
        time.sleep(4)  # the pickup change is overdue now
        nurse = {"Authorization": f"Bearer {caller_token('staff', 'nurse', school_id)}"}
        # The nurse is with the fallen child (the console and the parent's page show it); the knee is closed.
        httpx.post(f"{url}/v1/requests/{fall}/on-site", headers=nurse, timeout=10).raise_for_status()
        httpx.post(f"{url}/v1/requests/{knee}/on-site", headers=nurse, timeout=10).raise_for_status()
        httpx.post(f"{url}/v1/requests/{knee}/resolve", headers=nurse, timeout=10, json={
            "outcome": "back_to_class", "message": "膝盖擦伤已清洗消毒并包扎，孩子已回教室上课。放学时请留意伤口。"},
        ).raise_for_status()
        links = {post.json()["request"]["id"]: post.json()["request"]["ack_url"] for post in receiver.posts
                 if post.path == f"/{school_id}/nurse" and "ack_url" in post.json().get("request", {})}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for size, viewport in SIZES.items():
                context = browser.new_context(viewport=viewport, locale="zh-CN", device_scale_factor=1)
                page = context.new_page()
                page.goto(f"{url}/staff/login")
                shoot(page, f"login-{size}")
                page.goto(f"{url}/staff/login?token={caller_token('staff', 'aa', school_id)}")
                page.click("button[type=submit]")  # the token link shows a button; pressing it signs in
                page.wait_for_selector("html[data-live='ready']")
                shoot(page, f"staff-queue-{size}")
                page.goto(f"{url}/staff/requests/{homework}")
                shoot(page, f"staff-request-{size}")
                page.goto(f"{url}/staff/workload")
                shoot(page, f"staff-workload-{size}")
                page.goto(f"{url}/staff?lang=en")
                page.wait_for_selector("html[data-live='ready']")
                shoot(page, f"staff-queue-en-{size}")
                page.goto(f"{url}/staff?lang=zh")
                context.close()

                context = browser.new_context(viewport=viewport, locale="zh-CN")
                page = context.new_page()  # the principal lands on the report, then the school's settings
                page.goto(f"{url}/staff/login?token={caller_token('staff', 'principal', school_id)}")
                page.click("button[type=submit]")
                page.wait_for_url("**/staff/report")
                shoot(page, f"staff-report-{size}")
                page.goto(f"{url}/admin/settings")
                shoot(page, f"admin-settings-{size}")
                page.goto(f"{url}/admin/leave")
                shoot(page, f"admin-leave-{size}")
                context.close()

                context = browser.new_context(viewport=viewport, locale="zh-CN")
                page = context.new_page()
                page.goto(f"{url}/staff/login?token={caller_token('staff', 'nurse', school_id)}")
                page.click("button[type=submit]")  # the token link shows a button; pressing it signs in
                page.wait_for_selector("html[data-live='ready']")
                shoot(page, f"nurse-console-{size}")
                page.goto(f"{url}/nurse/requests/{dizzy}/close")
                page.get_by_label("家长接回").check()
                page.get_by_label("给家长的话（家长会看到）").fill("孩子在医务室休息，体温正常，已无呕吐。请您到校接孩子回家休息。")
                shoot(page, f"nurse-close-{size}")
                page.get_by_role("button", name="下一步：确认").click()
                page.wait_for_selector("#confirm")
                shoot(page, f"nurse-confirm-{size}")
                context.close()

                context = browser.new_context(viewport=viewport, locale="zh-CN")
                page = context.new_page()
                page.goto(links[dizzy])
                shoot(page, f"ack-{size}")
                page.goto(links[fall])
                shoot(page, f"ack-used-{size}")
                context.close()

                context = browser.new_context(viewport=viewport, locale="zh-CN")
                page = context.new_page()
                page.goto(f"{url}/p?token={caller_token('parent', 'g1', school_id)}")
                page.wait_for_selector("#mine li")
                page.get_by_role("button", name="身体不适").click()
                page.get_by_label("内容").fill("孩子早上有点咳嗽，请老师多留意")
                shoot(page, f"parent-home-{size}")
                page.goto(f"{url}/p/r/{fall}")
                page.wait_for_selector("#d-progress li")
                shoot(page, f"parent-request-{size}")
                page.goto(f"{url}/p/r/{knee}")
                page.wait_for_selector("#d-outcome:not(:empty)")
                shoot(page, f"parent-closed-{size}")
                context.close()
            browser.close()
    finally:
        stack.close()
        receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
