"""The staff queue and the admin forms in a real browser (Debian's Chromium), phone and desktop, against
`relay serve` and `relay worker` subprocesses and a real Redis; plus what the same pages answer over HTTP.

The queue: a P0 acknowledged from its row, the tab title counting unacknowledged emergencies, a sound and a
notification for a new P0 (permission asked once, on a click), timers in plain words. The admin forms: a bad
hours value refused in Chinese with nothing applied, the phone saved, the stand-in defaulting to the backup.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import test_pages_browser as pages
from support.spine import wait_until
from test_pages_browser import DESKTOP, PHONE, PageSchool, sign_in

# The browser pages' fixtures, shared (pytest finds a fixture by its name in the module).
browser, new_page, page_school = pages.browser, pages.new_page, pages.page_school

FEVER = "孩子在学校发烧39度，头很痛"
FALL = "孩子在操场摔倒了头流血"

# The browser's Notification, recorded instead of shown (headless Chromium has no desktop to show it on).
FAKE_NOTIFICATION = """
window.__notes = [];
window.Notification = function (title, options) { window.__notes.push({title: title, body: (options || {}).body}); };
window.Notification.permission = 'default';
window.Notification.requestPermission = function () {
  window.__asked = (window.__asked || 0) + 1;
  window.Notification.permission = 'granted';
  return Promise.resolve('granted');
};
"""


def submit_as_other_parent(school: PageSchool, text: str) -> dict[str, Any]:
    """李小华's father writes (student s3, guardian g2)."""
    answer = httpx.post(f"{school.url}/v1/requests", json={"student_id": "s3", "text": text},
                        headers={"Authorization": f"Bearer {school.parent_token('g2')}",
                                 "Idempotency-Key": uuid.uuid4().hex}, timeout=10)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    assert made["urgency"] == "P0"
    return made


def version_of(page: str) -> int:
    found = re.search(r"当前版本 v(\d+)", page)
    assert found, page
    return int(found.group(1))


def csrf_of(page: str) -> str:
    return page.split('name="csrf" content="', 1)[1].split('"', 1)[0]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_queue_row_ack_tab_title_alerts_and_plain_timers(page_school: PageSchool, new_page: Callable[..., Any],
                                                         viewport: dict[str, int]) -> None:
    first = page_school.submit(FEVER)
    assert first["urgency"] == "P0"
    staff = new_page(viewport)
    staff.add_init_script(FAKE_NOTIFICATION)
    sign_in(staff, page_school, "aa2")  # 赵老师: not the owner (王老师 owns class c1)
    assert staff.title().startswith("(1) 紧急待确认 · Relay")

    row = staff.locator(f"#queue li[data-id='{first['id']}']")
    assert re.fullmatch(r"\d+分\d+秒内需确认", row.locator(".countdown").inner_text())

    # Alerts: asked once, on the click; after that the button is gone for good.
    staff.get_by_role("button", name="开启紧急提醒（声音和通知）").click()
    staff.wait_for_selector("#alerts-state:has-text('紧急提醒已开启')")
    assert staff.evaluate("window.__asked") == 1 and staff.locator("#alerts-on").is_hidden()

    # A new P0 arrives live: it rings, a notification names the class and what happened, the title counts it.
    second = submit_as_other_parent(page_school, FALL)  # the same parent again would join the open one
    staff.locator(f"#queue li[data-id='{second['id']}']").wait_for(timeout=8_000)
    wait_until(lambda: staff.evaluate("window.__notes.length") == 1, 8, "a notification for the new P0")
    note = staff.evaluate("window.__notes[0]")
    assert note["title"].startswith("新的紧急请求：三年级2班") and "内需确认" in note["body"]
    assert staff.get_attribute("html", "data-rang") == "1"
    wait_until(lambda: staff.title().startswith("(2) 紧急待确认"), 8, "the tab title to count two")

    # An overdue row says by how much, in words (the due time moved into the past in the page only).
    staff.evaluate(f"""document.querySelector("#queue li[data-id='{second['id']}'] .countdown")
                       .setAttribute('data-due', new Date(Date.now() - 24000).toISOString())""")
    staff.wait_for_selector(f"#queue li[data-id='{second['id']}'] .countdown:text-matches('^已超时2\\\\d秒$')")

    # Acknowledge from the row: back on the queue, which says what was acknowledged and whose it is.
    row.get_by_role("button", name="确认接收").click()
    staff.wait_for_url(re.compile(rf"/staff\?.*acked={first['id']}"))
    done = staff.locator("#done").inner_text()
    assert done.startswith("已确认：三年级2班 张小明 身体不适") and "负责人仍是王老师" in done
    assert staff.locator(f"#queue li[data-id='{first['id']}'] .status").inner_text() == "已接收"
    assert staff.locator(f"#queue li[data-id='{first['id']}'] .row-ack").count() == 0
    assert staff.title().startswith("(1) 紧急待确认")
    assert staff.locator("#alerts-on").is_hidden()  # not asked again after the reload
    assert staff.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]


def test_queue_json_counts_waiting_emergencies_and_pages_answer_in_words(page_school: PageSchool) -> None:
    made = page_school.submit(FEVER)
    with page_school.signed_in("aa") as client:
        body = client.get("/staff/queue.json", params={"urgency": "P2"}).json()
        assert body["emergencies_waiting"] >= 1 and all(i["urgency"] == "P2" for i in body["items"])
        csrf = csrf_of(client.get("/staff").text)
        acked = client.post(f"/staff/requests/{made['id']}/ack",
                            data={"csrf": csrf, "back": "/staff?scope=mine&urgency=P0&acked=x"},
                            follow_redirects=False)
        assert acked.status_code == 303
        assert acked.headers["location"] == f"/staff?scope=mine&urgency=P0&acked={made['id']}"
        assert "已确认：三年级2班 张小明 身体不适。由您负责。" in client.get(acked.headers["location"]).text
        # Somewhere else than the queue: the request's page, as before.
        elsewhere = client.post(f"/staff/requests/{made['id']}/ack", data={"csrf": csrf, "back": "https://evil.example/staff"},
                                follow_redirects=False)
        assert elsewhere.headers["location"] == f"/staff/requests/{made['id']}?done=ack"
        page = client.get(f"/staff/requests/{made['id']}?done=ack").text
        assert "已确认，由您负责。" in page and "已完成。" not in page
        reassigned = client.post(f"/staff/requests/{made['id']}/reassign",
                                 data={"csrf": csrf, "to": "aa2", "reason": "他今天值班"})
        assert "已转交给赵老师" in reassigned.text
        main = re.sub(r"<script.*?</script>", " ", reassigned.text.split("<main", 1)[1], flags=re.S)
        shown = re.sub(r"<[^>]+>", " ", main)  # what a person reads, not the markup
        for code in ("P0 medical", "medical", "webhook", "fallback_unacknowledged", "aa2", "c1 ", "已完成"):
            assert code not in shown, (code, shown)
        workload = client.get("/staff/workload").text
        assert "已过截止时间的请求" in workload and "健康或安全有风险" in workload


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_admin_forms_refuse_bad_hours_in_chinese_and_save_the_phone(page_school: PageSchool,
                                                                     new_page: Callable[..., Any],
                                                                     viewport: dict[str, int]) -> None:
    late = page_school.submit(FEVER)
    page = new_page(viewport)
    page.goto(f"{page_school.url}/staff/login?token={page_school.staff_token('principal')}")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/staff/report$"))  # the principal lands on the report
    first_card = page.locator("main .card").first
    assert first_card.get_attribute("id") == "overdue" and "紧急的在前" in first_card.inner_text()
    assert late["id"]

    page.goto(f"{page_school.url}/admin/settings")
    page.fill("#school-phone", "0429-5123456")
    page.click("#save-phone")
    page.wait_for_selector("#done:has-text('已保存学校电话')")
    assert page.input_value("#school-phone") == "0429-5123456"

    # One bad day refuses the whole form: Tuesday closes before it opens, Monday's good change is not kept.
    page.fill("#mon-opens", "07:30")
    page.fill("#tue-opens", "17:00")
    page.fill("#tue-closes", "08:00")
    page.click("#save-hours")
    page.wait_for_selector("[role=alert]:has-text('放学时间 08:00 要晚于上学时间 17:00')")
    assert "周二" in page.locator("table.problems").inner_text()
    page.goto(f"{page_school.url}/admin/settings")
    assert page.input_value("#mon-opens") == "00:00" and page.input_value("#tue-closes") == "23:59"

    page.fill("#mon-opens", "07:30")
    page.click("#save-hours")
    page.wait_for_selector("#done:has-text('已保存作息时间')")
    assert page.input_value("#mon-opens") == "07:30"

    # The leave form: the stand-in follows the person, their configured backup, never themself.
    page.goto(f"{page_school.url}/admin/leave")
    assert page.input_value("#leave-staff") == "aa" and page.input_value("#leave-backup") == "aa2"
    page.select_option("#leave-staff", "aa2")
    assert page.input_value("#leave-backup") == ""  # no backup configured: the form asks
    assert page.locator("#leave-backup option[value='aa2']").is_disabled()
    # The checkbox sits right before its words, on the same line.
    gap, drop = page.evaluate("""() => {
        const box = document.querySelector('input[name=move_open]').getBoundingClientRect();
        const range = document.createRange();
        range.selectNodeContents(document.querySelector('input[name=move_open]').nextSibling);
        const words = range.getBoundingClientRect();
        return [words.left - box.right, Math.abs((words.top + words.bottom) / 2 - (box.top + box.bottom) / 2)];
    }""")
    assert 0 <= gap < 16 and drop < 12
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]


def test_admin_settings_forms_over_http(page_school: PageSchool) -> None:
    with page_school.signed_in("principal") as client:
        csrf = csrf_of(client.get("/staff/workload").text)
        before = version_of(client.get("/admin/settings").text)
        refused = client.post("/admin/settings/sla", data={"csrf": csrf, "P0_ack_within": "两分钟"})
        assert refused.status_code == 422 and "“两分钟”不是有效的时长" in refused.text
        assert version_of(client.get("/admin/settings").text) == before  # nothing published
        saved = client.post("/admin/settings/sla", data={"csrf": csrf, "P0_ack_within": "3分钟", "P0_resolve_within": "2小时",
                                                         "P0_step1_after": "3分钟", "P0_step1_notify": ["backup", "responder"]})
        assert saved.status_code == 200 and "已保存处理时限与升级" in saved.text
        assert 'value="3分钟"' in saved.text
        closure = client.post("/admin/settings/closures", data={"csrf": csrf, "start": "2031-06-01", "reason": "儿童节"})
        assert "已添加停课日" in closure.text and "儿童节" in closure.text
        bad_phone = client.post("/admin/settings/phone", data={"csrf": csrf, "phone": "请拨打校办"})
        assert bad_phone.status_code == 422 and "不是有效的电话号码" in bad_phone.text
        overview = client.get("/admin").text
        assert "修改作息/停课/时限</strong> · 马校长（校长）" in overview and "· principal" not in overview
        with httpx.Client(base_url=page_school.url, timeout=10) as anonymous:
            assert anonymous.post("/admin/settings/phone", data={"csrf": csrf, "phone": "1"},
                                  follow_redirects=False).status_code in (303, 403)
