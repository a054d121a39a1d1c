"""The pages in a real browser: headless Chromium (Debian's) driven by Playwright, against `relay serve`
and `relay worker` subprocesses and a real Redis (conftest's `stack`).

The walk the issue asks for: a parent writes "孩子在学校摔倒了头流血" on the H5 page; it appears on
the nurse console and the staff queue without a reload (server-sent events); the nurse acknowledges
with one tap; the parent's page then shows it acknowledged, with the owner in plain words.
Skipped when /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.spine import (
    Stack,
    WebhookReceiver,
    caller_token,
    school_document,
    staff_page_session,
    wait_until,
)

from relay.base.directory import load_yaml, publish

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ALL_WEEK = {day: "00:00-23:59" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@dataclass
class PageSchool:
    id: str
    url: str
    stack: Stack

    def parent_token(self, guardian_id: str = "g1") -> str:
        return caller_token("parent", guardian_id, self.id)

    def staff_token(self, staff_id: str) -> str:
        return caller_token("staff", staff_id, self.id)

    def submit(self, text: str, student_id: str = "s1", **extra: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/v1/requests", json={"student_id": student_id, "text": text, **extra},
                              headers={"Authorization": f"Bearer {self.parent_token()}",
                                       "Idempotency-Key": uuid.uuid4().hex}, timeout=10)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    @contextmanager
    def signed_in(self, staff_id: str) -> Iterator[httpx.Client]:
        """An httpx client holding a page session (the bearer-token way in)."""
        with httpx.Client(base_url=self.url, timeout=10, follow_redirects=True) as client:
            response = staff_page_session(client, self.staff_token(staff_id))
            assert response.status_code == 303, response.text
            yield client


def signin_id(school_id: str) -> str:
    return "s-" + school_id


def publish_school(stack: Stack, receiver_url: str, base: Path) -> PageSchool:
    """A school open all week (routine notifications are not held for a digest), published to the stack."""
    school_id = "t-" + uuid.uuid4().hex[:8]
    document = school_document(school_id, receiver_url)
    document["hours"] = ALL_WEEK
    # Staff ids repeat across the test schools, and a sign-in link goes to everyone with the id typed:
    # the sign-in test uses an id of this school alone, so no other test's receiver gets a link.
    document["staff"].append({"id": signin_id(school_id), "name": "孙老师", "roles": ["academic_affairs"],
                              "contacts": [{"channel": "webhook", "url": f"{receiver_url}/{school_id}/signin"}]})
    path = base / f"{school_id}.yaml"
    path.write_text(yaml.safe_dump({"schools": [document]}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    stack.school_ids.append(school_id)
    publish(stack.redis, load_yaml(path))
    school = PageSchool(school_id, stack.url, stack)
    auth = {"Authorization": f"Bearer {school.parent_token()}"}
    wait_until(lambda: httpx.get(f"{stack.url}/v1/me", headers=auth, timeout=2).status_code == 200, 10,
               f"the API to know school {school_id}", interval=0.05)
    return school


@pytest.fixture
def page_school(stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> PageSchool:
    return publish_school(stack, receiver.url, tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    contexts = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: print("console:", message.type, message.text))
        page.on("pageerror", lambda error: print("page error:", error))
        return page

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Any, school: PageSchool, staff_id: str) -> None:
    page.goto(f"{school.url}/staff/login?token={school.staff_token(staff_id)}")
    page.click("button[type=submit]")  # opening the link shows a button; only pressing it signs in
    page.wait_for_selector("html[data-live='ready']")  # the event stream is open


def test_parent_to_nurse_and_back_live(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    nurse = new_page(PHONE)
    sign_in(nurse, page_school, "nurse")
    assert nurse.url.endswith("/nurse")
    staff = new_page(DESKTOP)
    sign_in(staff, page_school, "aa")
    assert staff.url.endswith("/staff")
    for page in (nurse, staff):
        page.evaluate("window.notReloaded = true")

    parent = new_page(PHONE)
    parent.goto(f"{page_school.url}/p?token={page_school.parent_token()}")
    assert "token=" not in parent.url  # the token left the address bar for localStorage
    parent.wait_for_selector("#child option[value='s1']", state="attached")
    parent.get_by_role("button", name="身体不适").click()
    assert parent.get_by_role("button", name="身体不适").get_attribute("aria-pressed") == "true"
    parent.get_by_label("内容").fill("孩子在学校摔倒了头流血")
    parent.get_by_role("button", name="发送").click()
    parent.wait_for_url(re.compile(r"/p/r/r[0-9a-f]+$"))
    request_id = parent.url.rsplit("/", 1)[1]
    parent.wait_for_selector("#d-status:has-text('已收到')")

    # Live, without a reload: the event stream tells both pages.
    card = nurse.locator(f"#queue li[data-id='{request_id}']")
    card.wait_for(timeout=8_000)
    assert "孩子在学校摔倒了头流血" in card.inner_text()
    assert "张妈妈" in card.inner_text() and "+8613800000001" in card.inner_text()
    assert "三年级2班" in card.inner_text() and "P0 紧急" in card.inner_text()
    row = staff.locator(f"#queue li[data-id='{request_id}']")
    row.wait_for(timeout=8_000)
    assert "P0 紧急" in row.inner_text() and "待接收" in row.inner_text()
    assert re.search(r"^\d+分\d+秒内需确认$", row.locator(".countdown").inner_text())
    for page in (nurse, staff):
        assert page.evaluate("window.notReloaded") is True

    # The nurse acknowledges with one tap, on a phone.
    card.get_by_role("button", name="确认接收").click()
    nurse.wait_for_url(re.compile(r"/nurse\?done=ack"))
    assert nurse.locator(f"#queue li[data-id='{request_id}'] .status").inner_text() == "已接收"
    staff.locator(f"#queue li[data-id='{request_id}'] .status:has-text('已接收')").wait_for(timeout=8_000)
    assert staff.evaluate("window.notReloaded") is True

    # The parent's page (it polls the API) says who has it.
    parent.wait_for_selector("#d-status:has-text('负责人：王老师（教务）')", timeout=15_000)
    assert "刘校医（校医）已确认" in parent.locator("#d-progress").inner_text()  # who acknowledged, by name
    assert "已确认接收" in parent.locator("#d-timeline").inner_text()


def test_nurse_arrived_and_handled(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    made = page_school.submit("孩子在学校摔倒了头流血")
    nurse = new_page(PHONE)
    sign_in(nurse, page_school, "nurse")
    card = nurse.locator(f"#queue li[data-id='{made['id']}']")
    card.get_by_role("button", name="已到场").click()
    nurse.wait_for_url(re.compile(r"done=arrived"))
    # The card shows what was done, and the button that did it is gone.
    card = nurse.locator(f"#queue li[data-id='{made['id']}']")
    assert re.search(r"✓ 已到场 \d\d:\d\d", card.locator(".checks").inner_text())
    assert re.search(r"✓ 已确认 \d\d:\d\d", card.locator(".checks").inner_text())
    assert card.get_by_role("button", name="已到场").count() == 0
    assert "家长的页面已显示" in nurse.locator("p.ok").inner_text()
    record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
    assert record is not None and b'"status":"acknowledged"' in record
    timeline = page_school.stack.redis.lrange(f"relay:{page_school.id}:timeline:{made['id']}", 0, -1)
    assert any(b'"kind": "on_site"' in e for e in timeline)
    # Usable on a phone: nothing wider than the screen.
    assert nurse.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    # Closing an emergency: without words to the parent it is refused; then a confirmation step.
    card.get_by_role("link", name="办结…").click()
    nurse.wait_for_url(re.compile(r"/close$"))
    nurse.get_by_label("送医").check()
    nurse.evaluate("document.getElementById('close-message').removeAttribute('required')")  # as a script-less post
    nurse.get_by_role("button", name="下一步：确认").click()
    assert "请写一句给家长的话" in nurse.locator("p.error").inner_text()
    record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
    assert record is not None and b'"status":"resolved"' not in record
    nurse.get_by_label("给家长的话（家长会看到）").fill("孩子头部伤口已止血，已由校医陪同送往市医院，请直接前往。")
    nurse.get_by_role("button", name="下一步：确认").click()
    assert nurse.locator("#confirm-outcome").inner_text() == "送医"
    record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
    assert record is not None and b'"status":"resolved"' not in record  # not before the confirmation
    nurse.get_by_role("button", name="确认办结").click()
    nurse.wait_for_url(re.compile(r"done=handled"))
    assert nurse.locator(f"#queue li[data-id='{made['id']}']").count() == 0
    assert "给家长的话已发送" in nurse.locator("p.ok").inner_text()

    parent = new_page(PHONE)
    parent.goto(f"{page_school.url}/p/r/{made['id']}?token={page_school.parent_token()}")
    parent.wait_for_selector("#d-outcome:has-text('去向：送医')")
    assert "请直接前往" in parent.locator("#d-closing-text").inner_text()
    assert re.search(r"刘校医已到场 \d\d:\d\d", parent.locator("#d-progress").inner_text())
    assert parent.locator("#follow-up").is_hidden()


def test_staff_request_page_reply_with_canned_text(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    made = page_school.submit("明天孩子请假一天，家里有事", category_hint="请假")
    staff = new_page(DESKTOP)
    sign_in(staff, page_school, "aa")
    staff.locator(f"#queue li[data-id='{made['id']}'] a").click()
    staff.wait_for_url(re.compile(f"/staff/requests/{made['id']}"))
    assert "明天孩子请假一天，家里有事" in staff.locator(".message").inner_text()
    canned = staff.locator("#canned option").nth(1).get_attribute("value")
    assert canned and "请假已登记" in canned  # the attendance reply is offered first
    staff.select_option("#canned", value=canned)
    assert staff.input_value("#reply-text") == canned
    staff.get_by_role("button", name="发送回复").click()
    staff.wait_for_url(re.compile(r"done=reply"))
    assert canned in staff.locator(".timeline").inner_text()
    parent_view = httpx.get(f"{page_school.url}/v1/requests/{made['id']}",
                            headers={"Authorization": f"Bearer {page_school.parent_token()}"}).json()
    assert parent_view["status"] == "answered" and parent_view["replies"][0]["text"] == canned


def test_parent_text_is_never_markup(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    made = page_school.submit('<img src=x onerror="window.pwned=1">孩子作业问题 <script>window.pwned=2</script>')
    for path, viewport in ((f"/staff/requests/{made['id']}", DESKTOP), ("/staff", DESKTOP)):
        page = new_page(viewport)
        sign_in(page, page_school, "aa")
        page.goto(page_school.url + path)
        page.wait_for_selector("html[data-live='ready']")
        assert page.locator("main img").count() == 0
        assert page.evaluate("window.pwned") is None
        assert "<img src=x" in page.locator("main").inner_text()
    parent = new_page(PHONE)
    parent.goto(f"{page_school.url}/p/r/{made['id']}?token={page_school.parent_token()}")
    parent.wait_for_selector("#d-text:has-text('<img src=x')")
    assert parent.locator("main img").count() == 0 and parent.evaluate("window.pwned") is None


def test_english_switch_is_remembered(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    page = new_page(PHONE)
    page.goto(f"{page_school.url}/p?lang=en&token={page_school.parent_token()}")
    assert page.locator("h1").inner_text() == "Contact the school"
    assert page.get_by_role("button", name="Unwell").is_visible()
    page.goto(f"{page_school.url}/p")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="中文").click()
    assert page.locator("h1").inner_text() == "联系学校"


def test_keyboard_only_parent_can_choose_a_category(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    page = new_page(DESKTOP)
    page.goto(f"{page_school.url}/p?token={page_school.parent_token()}")
    page.wait_for_selector("#child option[value='s1']", state="attached")
    page.focus("#child")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.hint") == "请假"
    page.keyboard.press("Space")
    assert page.get_by_role("button", name="请假").get_attribute("aria-pressed") == "true"


def test_sign_in_with_a_one_time_link(page_school: PageSchool, receiver: WebhookReceiver,
                                      new_page: Callable[..., Any]) -> None:
    page = new_page(DESKTOP)
    page.goto(f"{page_school.url}/staff")
    page.wait_for_url(re.compile(r"/staff/login\?next="))
    page.get_by_label("工号或登记的手机号").fill(signin_id(page_school.id))
    page.get_by_role("button", name="发送登录链接").click()
    page.wait_for_selector("text=一次性登录链接")
    post = receiver.wait_for(lambda p: p.path == f"/{page_school.id}/signin", timeout=15, what="the sign-in link")
    assert post.json()["event"] == "staff.sign_in"
    link = post.json()["request"]["sign_in_url"]
    assert link.startswith(page_school.url + "/staff/signin/")
    page.goto(link)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r"/staff$"))
    assert page.locator("h1").inner_text().startswith("待处理请求")
    # The link works once.
    again = new_page(DESKTOP)
    again.goto(link)
    assert "无效" in again.locator("main").inner_text()


def test_security_headers_csrf_and_cookies(page_school: PageSchool) -> None:
    for path in ("/p", "/staff/login", "/a/not-a-token"):
        response = httpx.get(page_school.url + path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    made = page_school.submit("孩子在学校摔倒了头流血")
    with page_school.signed_in("nurse") as client:
        cookie = next(c for c in client.cookies.jar if c.name == "relay_staff")
        assert cookie.has_nonstandard_attr("HttpOnly") and not cookie.secure  # served over http here
        refused = client.post(f"/nurse/requests/{made['id']}/ack", data={"csrf": "forged"})
        assert refused.status_code == 403
        page = client.get("/nurse").text
        token = re.search(r'name="csrf" content="([^"]+)"', page)
        assert token is not None
        cross_site = client.post(f"/nurse/requests/{made['id']}/ack", data={"csrf": token.group(1)},
                                 headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403
        record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
        assert record is not None and b'"status":"received"' in record
    assert httpx.get(f"{page_school.url}/staff/queue.json").status_code == 401


def test_follow_up_is_merged_into_the_open_request(page_school: PageSchool) -> None:
    first = page_school.submit("孩子发烧了，下午想请假", category_hint="请假")
    second = page_school.submit("补充一下：明天上午也请假", category_hint="请假")
    assert first["category"] == second["category"]
    with page_school.signed_in("aa") as client:
        page = client.get(f"/staff/requests/{second['id']}").text
        assert f'name="into" value="{first["id"]}"' in page
        token = re.search(r'name="csrf" content="([^"]+)"', page)
        assert token is not None
        merged = client.post(f"/staff/requests/{second['id']}/merge", data={"csrf": token.group(1),
                                                                               "into": first["id"]})
        assert merged.status_code == 200 and f"/staff/requests/{first['id']}" in str(merged.url)
    redis = page_school.stack.redis
    older = [e for e in redis.lrange(f"relay:{page_school.id}:timeline:{first['id']}", 0, -1)
             if b'"follow_up"' in e]
    assert older and "明天上午也请假".encode() in older[0]
    newer = redis.get(f"relay:{page_school.id}:request:{second['id']}")
    assert newer is not None and b'"status":"resolved"' in newer
    closing = redis.lrange(f"relay:{page_school.id}:timeline:{second['id']}", -1, -1)[0]
    assert f"merged into {first['id']}".encode() in closing


def test_a_merge_into_an_unknown_request_is_refused_and_changes_nothing(page_school: PageSchool) -> None:
    made = page_school.submit("补充一下：明天上午也请假", category_hint="请假")
    with page_school.signed_in("aa") as client:
        page = client.get(f"/staff/requests/{made['id']}").text
        token = re.search(r'name="csrf" content="([^"]+)"', page)
        assert token is not None
        for into in ("r-nonexistent", ""):
            refused = client.post(f"/staff/requests/{made['id']}/merge", data={"csrf": token.group(1), "into": into})
            assert refused.status_code == 409 and "未找到要并入的请求" in refused.text
            assert "done=merge" not in str(refused.url)
    record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
    assert record is not None and b'"status":"received"' in record


# Inside an emergency (issue 15) --------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_parents_p0_page_names_who_was_told_and_the_school_phone(
    page_school: PageSchool, new_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    made = page_school.submit("孩子在学校发烧39度，很难受")
    parent = new_page(viewport)
    parent.goto(f"{page_school.url}/p/r/{made['id']}?token={page_school.parent_token()}")
    banner = parent.locator("#urgent")
    banner.wait_for()
    assert "紧急情况已通知学校" in banner.inner_text()
    parent.wait_for_selector("#u-told:has-text('校医 刘校医、教务 王老师')")
    phone = parent.get_by_role("link", name="0429-5123456")
    assert phone.get_attribute("href") == "tel:04295123456" and phone.is_visible()  # dialable as written
    assert "危急请拨打120" in banner.inner_text()
    assert parent.locator("#d-eta").inner_text().count("预计") == 1
    assert parent.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
    # Then the nurse comes: the page says who, as it happens (it polls).
    arrived = httpx.post(f"{page_school.url}/v1/requests/{made['id']}/on-site",
                         headers={"Authorization": f"Bearer {page_school.staff_token('nurse')}"}, timeout=10)
    assert arrived.status_code == 200, arrived.text
    parent.wait_for_selector("#d-progress:has-text('刘校医已到场')", timeout=10_000)
    assert "刘校医（校医）已确认" in parent.locator("#d-progress").inner_text()
    # The parent answers in the same thread.
    parent.get_by_label("补充情况或回复老师").fill("我20分钟后到学校")
    parent.get_by_role("button", name="发送补充").click()
    parent.wait_for_selector("#d-timeline:has-text('我20分钟后到学校')")


def test_a_parent_marks_a_routine_request_urgent(page_school: PageSchool, new_page: Callable[..., Any]) -> None:
    made = page_school.submit("孩子说肚子有点不舒服，麻烦老师留意一下")
    assert made["urgency"] != "P0"
    parent = new_page(PHONE)
    parent.goto(f"{page_school.url}/p/r/{made['id']}?token={page_school.parent_token()}")
    parent.get_by_role("button", name="这很紧急").click()
    parent.get_by_role("button", name="确定，标记为紧急").click()
    parent.wait_for_selector("#urgent:has-text('紧急情况已通知学校')")
    assert parent.locator("#urgent-box").is_hidden()
    record = page_school.stack.redis.get(f"relay:{page_school.id}:request:{made['id']}")
    assert record is not None and b'"urgency":"P0"' in record


def ack_link(page_school: PageSchool, receiver: WebhookReceiver, request_id: str, staff_id: str) -> str:
    post = receiver.wait_for(lambda p: p.path == f"/{page_school.id}/{staff_id}"
                             and p.json()["request"]["id"] == request_id, timeout=15, what="the alert")
    link: str = post.json()["request"]["ack_url"]
    return link


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_ack_page_shows_the_class_and_category_and_who_acknowledged(
    page_school: PageSchool, receiver: WebhookReceiver, new_page: Callable[..., Any], viewport: dict[str, int]
) -> None:
    made = page_school.submit("孩子在学校发烧39度，很难受")
    link = ack_link(page_school, receiver, made["id"], "nurse")
    page = new_page(viewport)
    page.goto(link)
    assert "三年级2班 · 张同学" in page.locator("#ack-who").inner_text()
    assert page.locator("#ack-category").inner_text() == "身体不适"
    assert "发烧39度" in page.locator("#ack-excerpt").inner_text()
    assert page.get_by_role("link", name="+8613800000001").get_attribute("href") == "tel:+8613800000001"
    page.get_by_role("button", name="确认收到").click()
    assert "已确认收到。负责人：王老师（教务）。" in page.locator("#ack-done").inner_text()
    # A second tap on the used link: who acknowledged and when, and no button.
    again = new_page(viewport)
    again.goto(link)
    assert re.search(r"刘校医（校医）已于 \d\d-\d\d \d\d:\d\d 确认收到", again.locator("#ack-used").inner_text())
    assert again.get_by_role("button", name="确认收到").count() == 0
    stale = new_page(viewport)
    response = stale.goto(f"{page_school.url}/a/zzzzzzzzzzzz")
    assert response is not None and response.status == 404
    assert "链接无效或已过期" in stale.locator("h1").inner_text()


def test_a_bleeding_head_injury_from_a_fight_reaches_the_nurse(page_school: PageSchool,
                                                                new_page: Callable[..., Any]) -> None:
    nurse = new_page(PHONE)
    sign_in(nurse, page_school, "nurse")
    made = page_school.submit("孩子在学校被同学打了，头撞破了在流血")
    assert (made["urgency"], made["category"]) == ("P0", "safety")
    card = nurse.locator(f"#queue li[data-id='{made['id']}']")
    card.wait_for(timeout=8_000)
    assert "头撞破了在流血" in card.inner_text() and "张妈妈" in card.inner_text()
