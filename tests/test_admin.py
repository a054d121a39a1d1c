"""School administration at run time, against `relay serve` and `relay worker` subprocesses and a real Redis.

A change is published as a new directory version; every process plans against it within about a
second, without a restart; a request is planned against one version, which its record and its
"received" entry name.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from support.admin import AdminStack, admin_document, bomb_workbook, today, workbook_bytes
from support.spine import RELAY, ROOT, WebhookReceiver, wait_until

from relay.base.directory import load_yaml
from relay.school import roster_files
from routing.directory import School


@pytest.fixture(scope="module")
def admin_stack(redis_url: str, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminStack]:
    stack = AdminStack(redis_url, receiver, tmp_path_factory.mktemp("admin"))
    try:
        yield stack
    finally:
        stack.close()


def _roster_of(admin_stack: AdminStack, school_id: str, students: int, academic_affairs: str) -> bytes:
    """The school's roster as a workbook, with `students` more students and class c1 given to `academic_affairs`."""
    document = admin_document(school_id, admin_stack.receiver.url)
    document["classes"][0]["academic_affairs"] = academic_affairs
    for n in range(students):
        document["students"].append({"id": f"s-{5000 + n}", "name": f"学生{n}", "class_id": "c1",
                                     "guardians": [{"id": f"g-{5000 + n}", "name": f"家长{n}",
                                                    "phone": f"+86139{n:08d}", "relation": "mother"}]})
    return roster_files.workbook(School.model_validate(document))


def _check(client: httpx.Client, headers: dict[str, str], content: bytes, name: str = "roster.xlsx") -> httpx.Response:
    return client.post("/v1/admin/roster/check", files={"file": (name, content)}, headers=headers)


def test_a_workbook_bomb_is_refused_with_422_naming_the_limit(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    bomb = bomb_workbook(400 * 1024 * 1024)  # 412 KB that unpacks to 400 MiB
    response = _check(admin_stack.client, admin_stack.staff(school_id), bomb)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid_roster" and body["import_id"] is None
    assert "24 MB" in body["problems"][0]["message"], body["problems"]
    assert admin_stack.client.get("/readyz").status_code == 200 and admin_stack.api.poll() is None


def test_a_new_version_reaches_the_api_and_the_worker_within_a_second(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    first = admin_stack.submit(school_id, "今天放学我来接孩子，改为爷爷接")
    assert first["owner"] == "aa"
    # v2: aa on leave today with the duty leader as backup, whose webhook moves to a new path.
    document = admin_document(school_id, admin_stack.receiver.url)
    duty = next(s for s in document["staff"] if s["id"] == "duty")
    duty["contacts"] = [{"channel": "webhook", "url": f"{admin_stack.receiver.url}/{school_id}/duty-v2"}]
    aa = next(s for s in document["staff"] if s["id"] == "aa")
    aa["leave"] = [{"start": today().isoformat(), "end": (today() + dt.timedelta(days=1)).isoformat(), "backup": "duty"}]
    # Published by another process (this one, as another API replica or `relay config apply` would):
    # the API and the worker learn of it only through their once-a-second refresh.
    version = admin_stack.publish(document)
    view, seconds = admin_stack.version_seen(school_id, version, "今天放学我来接孩子，改为爷爷接")
    print(f"\nv{version} published elsewhere: the API planned against it after {seconds * 1000:.0f} ms")
    assert seconds < 2.5, "Directories refreshes every second: a new version is used within about a second"
    assert view["owner"] == "duty"
    received = next(e for e in view["timeline"] if e["kind"] == "received")
    assert received.get("directory_version", version) == version
    # The worker delivers to the contact of the version the request was planned against.
    admin_stack.receiver.wait_for(lambda p: p.path == f"/{school_id}/duty-v2" and p.json()["request"]["id"] == view["id"],
                                  timeout=10, what="the notification at the new version's contact")


def test_an_import_applied_while_parents_submit_never_plans_against_half_a_directory(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    before = admin_stack.client.get("/v1/admin/directory", headers=headers).json()["version"]
    checked = _check(admin_stack.client, headers, _roster_of(admin_stack, school_id, 1200, "aa2"))
    assert checked.status_code == 200, checked.text
    assert checked.json()["summary"]["students"] == {"total": 1203, "added": 1200, "removed": 0}

    stop = threading.Event()
    made: list[str] = []
    failures: list[str] = []

    def parents() -> None:
        with httpx.Client(base_url=admin_stack.url, timeout=15) as client:
            while not stop.is_set():
                try:
                    made.append(admin_stack.submit(school_id, client=client)["id"])
                except AssertionError as exc:
                    failures.append(str(exc))

    thread = threading.Thread(target=parents)
    thread.start()
    try:
        wait_until(lambda: len(made) >= 5, 10, "requests before the import")
        started = time.perf_counter()
        applied = admin_stack.client.post(f"/v1/admin/roster/{checked.json()['import_id']}/apply", headers=headers)
        assert applied.status_code == 200, applied.text
        print(f"\napplied a 1,203-student import over HTTP in {(time.perf_counter() - started) * 1000:.0f} ms")
        after = applied.json()["version"]
        assert applied.json()["previous_version"] == before
        count = len(made)
        wait_until(lambda: any(admin_stack.record(school_id, r)["directory_version"] == after for r in made[count:]),
                   10, "requests planned against the imported version")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not failures, failures[:3]
    owner_in = {before: "aa", after: "aa2"}
    versions: dict[int, int] = {}
    for request_id in made:
        record = admin_stack.record(school_id, request_id)
        versions[record["directory_version"]] = versions.get(record["directory_version"], 0) + 1
        assert record["directory_version"] in owner_in, record["directory_version"]
        assert record["owner"] == owner_in[record["directory_version"]], record
        received = admin_stack.timeline(school_id, request_id)[0]
        assert received["kind"] == "received" and received["directory_version"] == record["directory_version"]
    print(f"\n{len(made)} requests during the import: {versions}")
    assert versions.get(before) and versions.get(after)
    # The imported students can write at once.
    assert admin_stack.client.get("/v1/admin/directory", headers=headers).json()["school"]["students"][-1]["id"] == "s-6199"


def test_a_link_of_someone_the_roster_import_removed_acknowledges_nothing(admin_stack: AdminStack) -> None:
    """Issue 20: an old acknowledgement link must not stop an emergency's escalation for someone who left."""
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    fever = admin_stack.submit(school_id, "孩子在学校发烧了")
    assert fever["urgency"] == "P0"
    nurse = admin_stack.receiver.wait_for(
        lambda p: p.path == f"/{school_id}/nurse" and p.json()["request"]["id"] == fever["id"],
        timeout=10, what="the nurse's notification")
    path = httpx.URL(nurse.json()["request"]["ack_url"]).path
    assert admin_stack.client.get(path).status_code == 200  # while she is on the roster, the link works

    # The real roster change: the school's roster without the nurse, checked and applied as an administrator would.
    document = admin_document(school_id, admin_stack.receiver.url)
    document["staff"] = [s for s in document["staff"] if s["id"] != "nurse"]
    checked = _check(admin_stack.client, headers, roster_files.workbook(School.model_validate(document)))
    assert checked.status_code == 200, checked.text
    assert checked.json()["summary"]["staff"]["removed"] == 1
    applied = admin_stack.client.post(f"/v1/admin/roster/{checked.json()['import_id']}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    wait_until(lambda: admin_stack.client.get(path).status_code == 403, 5, "the API to use the imported roster")

    page = admin_stack.client.get(path)
    assert "此链接已不能使用" in page.text and 'method="post"' not in page.text
    confirm = admin_stack.client.post(path)
    assert confirm.status_code == 403 and "此链接已不能使用" in confirm.text
    record = admin_stack.record(school_id, fever["id"])
    assert (record["status"], record["acknowledged_by"]) == ("received", None)
    assert "acknowledged" not in {e["kind"] for e in admin_stack.timeline(school_id, fever["id"])}
    # The escalation is still armed: nobody's old link stopped it.
    assert admin_stack.redis.zscore(f"relay:{school_id}:timers", f"escalate|{fever['id']}|1") is not None


@pytest.mark.parametrize(("url", "refused"), [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("http://10.20.30.40/hook", "not listed in RELAY_WEBHOOK_ALLOW_PRIVATE"),  # the stack allows 127.0.0.0/8 only
    ("http://1.1.1.1/hook", "use https://"),
])
def test_an_administrator_cannot_point_a_contact_at_a_private_or_metadata_address(
    admin_stack: AdminStack, url: str, refused: str
) -> None:
    """Issue 20 (blind SSRF): refused when edited and when a roster is checked, naming the contact; nothing changes."""
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    before = admin_stack.client.get("/v1/admin/directory", headers=headers).json()["version"]
    document = admin_document(school_id, admin_stack.receiver.url)
    nurse = next(s for s in document["staff"] if s["id"] == "nurse")
    nurse["contacts"] = [{"channel": "webhook", "url": url}]

    edited = admin_stack.client.put("/v1/admin/directory", headers=headers, json=document)
    assert edited.status_code == 422 and edited.json()["error"]["code"] == "invalid_directory", edited.text
    problem = edited.json()["problems"][0]
    assert problem["where"] == "staff[nurse].contacts[0] (webhook)" and refused in problem["message"]
    assert "刘校医" in problem["message"]

    checked = _check(admin_stack.client, headers, roster_files.workbook(School.model_validate(document)))
    assert checked.status_code == 422 and checked.json()["error"]["code"] == "invalid_roster", checked.text
    [problem] = checked.json()["problems"]
    assert problem["column"] == "Webhook" and problem["row"] and refused in problem["message"]
    assert admin_stack.client.get("/v1/admin/directory", headers=headers).json()["version"] == before


def test_leave_sends_new_requests_to_the_backup_and_moves_open_ones(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    open_one = admin_stack.submit(school_id)
    assert open_one["owner"] == "aa"
    leave = {"staff_id": "aa", "start": today().isoformat(), "end": (today() + dt.timedelta(days=2)).isoformat(),
             "backup": "duty", "move_open": True}
    response = admin_stack.client.post("/v1/admin/leave", json=leave, headers=headers)
    assert response.status_code == 200, response.text
    assert open_one["id"] in response.json()["moved"]
    moved = admin_stack.record(school_id, open_one["id"])
    assert moved["owner"] == "duty"
    entry = next(e for e in admin_stack.timeline(school_id, open_one["id"]) if e["kind"] == "reassigned")
    assert entry["by"] == "adm" and entry["previous_owner"] == "aa" and "请假" in entry["reason"]

    view, _ = admin_stack.version_seen(school_id, response.json()["version"])
    assert view["owner"] == "duty", "while aa is on leave, their new requests go to the named backup"

    overlapping = admin_stack.client.post("/v1/admin/leave", json=leave, headers=headers)
    assert overlapping.status_code == 409 and overlapping.json()["error"]["code"] == "overlapping_leave"
    unknown = admin_stack.client.post("/v1/admin/leave", json=leave | {"backup": "nobody", "start": "2031-01-01",
                                                                         "end": "2031-01-02"}, headers=headers)
    assert unknown.status_code == 404

    cancelled = admin_stack.client.post("/v1/admin/leave/cancel", json={"staff_id": "aa", "start": leave["start"]},
                                        headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    view, _ = admin_stack.version_seen(school_id, cancelled.json()["version"])
    assert view["owner"] == "aa"
    log = admin_stack.client.get("/v1/admin/log", headers=headers).json()["changes"]
    assert [c["action"] for c in log[:3]] == ["leave_cancelled", "requests_moved", "leave_added"]
    audit = [fields or {} for _, fields in admin_stack.redis.xrange(f"relay:{school_id}:audit") or []]
    assert {b"action": b"admin.leave_added", b"staff_id": b"adm"}.items() <= {
        k: v for e in audit for k, v in e.items() if e.get(b"action") == b"admin.leave_added"}.items()


def test_move_open_knows_only_this_schools_staff_and_owners(admin_stack: AdminStack) -> None:
    school_id, other_id = admin_stack.new_school(), admin_stack.new_school()
    elsewhere = admin_document(other_id, admin_stack.receiver.url)
    elsewhere["staff"].append({"id": "t-elsewhere", "name": "别校老师", "roles": ["academic_affairs"]})
    admin_stack.publish(elsewhere)
    headers = admin_stack.staff(school_id)
    for body in ({"to": "aa2"}, {}):  # to someone named, or to the backup of a leave
        response = admin_stack.client.post("/v1/admin/staff/t-elsewhere/move-open", json=body, headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "unknown_staff"

    # Someone removed from the directory who still owns open requests: those are the ones to move.
    open_one = admin_stack.submit(school_id)
    without_aa = admin_document(school_id, admin_stack.receiver.url)
    without_aa["staff"] = [s for s in without_aa["staff"] if s["id"] != "aa"]
    without_aa["classes"][0]["academic_affairs"] = "aa2"
    admin_stack.publish(without_aa)
    response = admin_stack.client.post("/v1/admin/staff/aa/move-open", json={"to": "aa2"}, headers=headers)
    assert response.status_code == 200 and response.json()["moved"] == [open_one["id"]], response.text


def test_a_class_reassigned_then_the_previous_version_restored(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    first = admin_stack.client.get("/v1/admin/directory", headers=headers).json()["version"]
    open_one = admin_stack.submit(school_id)
    changed = admin_stack.client.post("/v1/admin/classes/c1/academic-affairs", json={"to": "aa2", "move_open": True},
                                      headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["moved"] == [open_one["id"]]
    assert admin_stack.record(school_id, open_one["id"])["owner"] == "aa2"
    view, _ = admin_stack.version_seen(school_id, changed.json()["version"])
    assert view["owner"] == "aa2"
    refused = admin_stack.client.post("/v1/admin/classes/c1/academic-affairs", json={"to": "hr"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_academic_affairs"

    restored = admin_stack.client.post(f"/v1/admin/versions/{first}/restore", headers=headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] > changed.json()["version"]
    view, _ = admin_stack.version_seen(school_id, restored.json()["version"])
    assert view["owner"] == "aa" and view["directory_version"] == restored.json()["version"]
    listed = admin_stack.client.get("/v1/admin/versions", headers=headers).json()["versions"]
    assert listed[0]["current"] and listed[0]["note"] == f"restore:{first}"
    assert [v["version"] for v in listed] == sorted((v["version"] for v in listed), reverse=True)
    gone = admin_stack.client.post("/v1/admin/versions/9999/restore", headers=headers)
    assert gone.status_code == 422 and gone.json()["problems"]


def test_settings_are_checked_like_config_check_before_publishing(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    now = admin_stack.client.get("/v1/admin/settings", headers=headers).json()
    bad = admin_stack.client.put("/v1/admin/settings", headers=headers, json={
        "hours": {"mon": "17:00-08:00"}, "sla": {"P0": {"ack_within": 5, "escalation": [
            {"after": "2m", "notify": ["staff:nobody"]}]}}})
    assert bad.status_code == 422
    assert {p["where"] for p in bad.json()["problems"]} >= {"hours", "sla.P0.ack_within"}
    roster = admin_stack.client.put("/v1/admin/settings", headers=headers, json={"students": []})
    assert roster.status_code == 422 and roster.json()["problems"][0]["where"] == "students"
    assert admin_stack.client.get("/v1/admin/settings", headers=headers).json()["version"] == now["version"]

    closures = [{"start": "2031-05-22", "reason": "春季运动会"}]
    good = admin_stack.client.put("/v1/admin/settings", headers=headers,
                                  json={"closures": closures, "hours": {"mon": "07:40-16:30"}})
    assert good.status_code == 200, good.text
    saved = admin_stack.client.get("/v1/admin/settings", headers=headers).json()
    assert saved["settings"]["closures"] == closures and saved["settings"]["hours"] == {"mon": "07:40-16:30"}
    assert len(admin_stack.client.get("/v1/admin/directory", headers=headers).json()["school"]["students"]) == 3


def test_only_a_schools_own_administrators_change_its_directory(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    other_id = admin_stack.new_school(with_admin=False)
    client = admin_stack.client
    teacher = client.get("/v1/admin/versions", headers=admin_stack.staff(school_id, "aa"))
    assert teacher.status_code == 403 and teacher.json()["error"]["code"] == "forbidden"
    for path, body in (("/v1/admin/leave", {"staff_id": "aa", "start": "2031-01-01", "end": "2031-01-02",
                                            "backup": "aa2"}),
                       ("/v1/admin/classes/c1/academic-affairs", {"to": "aa2"})):
        refused = client.post(path, json=body, headers=admin_stack.staff(school_id, "aa"))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/admin/versions", headers=admin_stack.parent(school_id)).status_code == 403
    assert client.get("/v1/admin/versions").status_code == 401
    # The principal administers too; each sees their own school only, which no URL can name.
    mine = client.get("/v1/admin/directory", headers=admin_stack.staff(school_id, "principal")).json()
    theirs = client.get("/v1/admin/directory", headers=admin_stack.staff(other_id, "principal")).json()
    assert mine["school_id"] == school_id and theirs["school_id"] == other_id
    # adm is an administrator of one school only: a token naming the other is not anyone there.
    assert client.get("/v1/admin/directory", headers=admin_stack.staff(other_id, "adm")).status_code == 401
    replaced = client.put("/v1/admin/directory", headers=admin_stack.staff(school_id),
                          json=admin_document(other_id, admin_stack.receiver.url))
    assert replaced.status_code == 422
    assert client.get("/v1/admin/versions", headers=admin_stack.staff(other_id, "principal")).json()["versions"][0][
        "version"] == theirs["version"]

    # The pages: same sign-in as /staff; a teacher is told no (403), an administrator gets in.
    with httpx.Client(base_url=admin_stack.url, timeout=15) as pages:
        _sign_in(pages, school_id, "aa")
        denied = pages.get("/admin")
        assert denied.status_code == 403 and "没有权限" in denied.text
        assert pages.get("/admin/roster/template.xlsx").status_code == 403
    with httpx.Client(base_url=admin_stack.url, timeout=15) as pages:
        assert pages.get("/admin").status_code == 303  # not signed in: to the sign-in page
        _sign_in(pages, school_id, "adm")
        assert pages.get("/admin").status_code == 200
        assert pages.post("/admin/versions/1/restore", data={"csrf": "forged"}).status_code == 403


def _sign_in(pages: httpx.Client, school_id: str, staff_id: str) -> str:
    from support.spine import caller_token, staff_page_session

    response = staff_page_session(pages, caller_token("staff", staff_id, school_id))
    assert response.status_code == 303, response.text
    page = pages.get("/staff")
    marker = 'name="csrf" content="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]


def test_the_admin_pages_import_leave_and_settings(admin_stack: AdminStack) -> None:
    school_id = admin_stack.new_school()
    with httpx.Client(base_url=admin_stack.url, timeout=15) as pages:
        csrf = _sign_in(pages, school_id, "adm")
        assert "学校管理" in pages.get("/admin").text
        template = pages.get("/admin/roster/template.xlsx")
        assert template.status_code == 200
        assert {"学生", "教职工", "班级"} <= set(load_workbook(io.BytesIO(template.content)).sheetnames)
        assert pages.get("/admin/roster/template/students.csv").content.startswith("\ufeff学号".encode())

        book = load_workbook(io.BytesIO(pages.get("/admin/roster/current.xlsx").content))
        book["学生"].append(["s-9", "新同学", "不存在的班", "新妈妈", "1380000", "妈妈"])
        bad = pages.post("/admin/roster/check", data={"csrf": csrf},
                         files={"file": ("roster.xlsx", workbook_bytes(book))})
        assert bad.status_code == 422
        assert "未知班级「不存在的班」" in bad.text and "电话号码格式不对：1380000" in bad.text

        book = load_workbook(io.BytesIO(pages.get("/admin/roster/current.xlsx").content))
        book["学生"].append(["s-9", "新同学", "三年级2班", "新妈妈", "138 0000 0009", "妈妈"])
        good = pages.post("/admin/roster/check", data={"csrf": csrf},
                          files={"file": ("roster.xlsx", workbook_bytes(book))})
        assert good.status_code == 200 and "检查通过" in good.text
        import_id = good.text.split('name="import_id" value="', 1)[1].split('"', 1)[0]
        applied = pages.post("/admin/roster/apply", data={"csrf": csrf, "import_id": import_id})
        assert applied.status_code == 303 and applied.headers["location"].startswith("/admin?done=import")
        school = admin_stack.client.get("/v1/admin/directory", headers=admin_stack.staff(school_id)).json()["school"]
        assert school["students"][-1]["guardians"][0]["phone"] == "+8613800000009"
        again = pages.post("/admin/roster/apply", data={"csrf": csrf, "import_id": import_id})
        assert again.status_code == 409 and "已过期或已应用" in again.text

        leave = pages.post("/admin/leave", data={"csrf": csrf, "staff_id": "aa", "start": "2031-03-02",
                                                 "end": "2031-03-06", "backup": "aa2"})
        assert leave.status_code == 303
        assert "2031-03-06" in pages.get("/admin/leave").text
        classes = pages.get("/admin/classes")
        assert "三年级2班" in classes.text and 'action="/admin/classes/c1"' in classes.text
        assert "/admin/classes" in pages.get("/staff/workload").text

        broken = pages.post("/admin/settings", data={"csrf": csrf, "settings": "hours:\n  mon: 25:00-26:00\n"})
        assert broken.status_code == 422 and "hours" in broken.text
        saved = pages.post("/admin/settings", data={"csrf": csrf, "settings": "closures:\n- {start: 2031-06-01, reason: 儿童节}\n"})
        assert saved.status_code == 303
        overview = pages.get("/admin")
        assert "修改作息/停课/时限" in overview.text and "导入名单" in overview.text and "恢复为新版本" in overview.text


def test_config_apply_and_export(admin_stack: AdminStack, tmp_path: Any) -> None:
    school_id = admin_stack.new_school()
    env = admin_stack.env

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RELAY, "config", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    exported = relay("export", "--school", school_id)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / "school.yaml"
    path.write_text(exported.stdout, encoding="utf-8")
    unchanged = relay("apply", str(path))
    assert unchanged.returncode == 0, unchanged.stderr
    line = json.loads(unchanged.stdout)
    assert line["school_id"] == school_id and line["changed"] is False

    school_class = load_yaml(path).schools[0].school_class("c1")
    assert school_class is not None and school_class.academic_affairs == "aa"
    path.write_text(exported.stdout.replace("academic_affairs: aa\n", "academic_affairs: aa2\n"), encoding="utf-8")
    started = time.monotonic()
    applied = relay("apply", str(path))
    assert applied.returncode == 0, applied.stderr
    version = json.loads(applied.stdout)["version"]
    assert version == line["version"] + 1
    view, _ = admin_stack.version_seen(school_id, version)
    print(f"\nrelay config apply → planned against v{version} after {time.monotonic() - started:.2f} s")
    assert view["owner"] == "aa2"

    path.write_text(exported.stdout.replace("academic_affairs: aa\n", "academic_affairs: nobody\n"), encoding="utf-8")
    refused = relay("apply", str(path))
    assert refused.returncode == 1 and "unknown staff 'nobody'" in refused.stdout
    assert json.loads(relay("versions", "--school", school_id).stdout.splitlines()[0])["version"] == version


def test_next_years_holidays_entered_on_the_admin_pages_reach_every_process(admin_stack: AdminStack) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from relay.base import metrics
    from relay.base.runtime import Runtime
    from relay.base.settings import Settings
    from routing.calendar import missing_years

    school_id = admin_stack.new_school()
    this_year, next_year = today().year, today().year + 1
    runtime = Runtime(Settings(queue_prefix=admin_stack.env["RELAY_QUEUE_PREFIX"]), connection=admin_stack.redis)

    def gauge() -> float | None:
        before = metrics._state
        metrics.install_collectors(runtime)
        try:
            exposition = metrics.render()[0].decode()
        finally:
            metrics._state = before
        return next((s.value for f in text_string_to_metric_families(exposition) for s in f.samples
                     if s.name == "relay_calendar_next_year_missing" and s.labels.get("school") == school_id), None)

    with httpx.Client(base_url=admin_stack.url, timeout=15) as pages:
        csrf = _sign_in(pages, school_id, "adm")
        school = School.model_validate(
            admin_stack.client.get("/v1/admin/directory", headers=admin_stack.staff(school_id)).json()["school"])
        missing = bool(missing_years(school, today()))  # from November, or in a year chinese-calendar does not know
        assert ('id="calendar-missing"' in pages.get("/admin").text) is missing
        assert gauge() == (1 if missing else 0)

        backwards = pages.post("/admin/calendar/holidays", data={"csrf": csrf, "name": "春节",
                                                                 "start": f"{next_year}-02-11", "end": f"{next_year}-02-05"})
        assert backwards.status_code == 422 and "is before from" in backwards.text
        for kind, form in (("holidays", {"name": "元旦", "start": f"{next_year}-01-01"}),
                           ("holidays", {"name": "春节", "start": f"{next_year}-02-05", "end": f"{next_year}-02-11"}),
                           ("workdays", {"name": "春节调休", "date": f"{next_year}-02-14"}),
                           ("holidays", {"name": "校庆", "start": f"{this_year}-12-28"})):
            added = pages.post(f"/admin/calendar/{kind}", data={"csrf": csrf, **form})
            assert added.status_code == 303, added.text
        clash = pages.post("/admin/calendar/workdays", data={"csrf": csrf, "name": "调休", "date": f"{next_year}-02-08"})
        assert clash.status_code == 422 and "also a holiday" in clash.text

        page = pages.get("/admin/calendar")
        assert "春节调休" in page.text and f"{next_year}-02-11" in page.text
        assert 'id="calendar-missing"' not in page.text
        assert "修改节假日与调休" in pages.get("/admin").text  # the change log
        removed = pages.post("/admin/calendar/remove", data={"csrf": csrf, "kind": "holidays",
                                                             "start": f"{this_year}-12-28"})
        assert removed.status_code == 303
        assert "校庆" not in pages.get("/admin/calendar").text

    # The calendar is in the school's version, which every process reads: the gauge clears.
    wait_until(lambda: gauge() == 0, 5, "the missing-calendar gauge to clear")
    settings = admin_stack.client.get("/v1/admin/settings", headers=admin_stack.staff(school_id)).json()["settings"]
    assert settings["calendar"]["workdays"] == [{"date": f"{next_year}-02-14", "name": "春节调休"}]
    assert {"from": f"{next_year}-02-05", "to": f"{next_year}-02-11", "name": "春节"} in settings["calendar"]["holidays"]
    # The JSON settings take the same calendar, checked the same way.
    bad = admin_stack.client.put("/v1/admin/settings", headers=admin_stack.staff(school_id),
                                 json={"calendar": {"holidays": [{"date": f"{next_year}-10-01"}]}})
    assert bad.status_code == 422 and bad.json()["problems"][0]["where"] == "calendar.holidays[0].name"


def test_a_roll_call_outside_the_school_hours_is_refused_with_its_key_and_nothing_is_applied(
    admin_stack: AdminStack
) -> None:
    school_id = admin_stack.new_school()
    headers = admin_stack.staff(school_id)
    before = admin_stack.client.get("/v1/admin/settings", headers=headers).json()
    bad = admin_stack.client.put("/v1/admin/settings", headers=headers, json={
        "hours": {"mon": "07:40-16:30"}, "roll_call": {"at": "07:00", "after_school_until": "16:00"}})
    assert bad.status_code == 422
    problems = {p["where"]: p["message"] for p in bad.json()["problems"]}
    assert "点名时间 07:00 不在周一的在校时间 07:40-16:30 内" in problems["roll_call.at"]
    assert "课后看护结束时间 16:00 不晚于周一的放学时间 16:30" in problems["roll_call.after_school_until"]
    after = admin_stack.client.get("/v1/admin/settings", headers=headers).json()
    assert after["version"] == before["version"] and after["settings"] == before["settings"]

    good = admin_stack.client.put("/v1/admin/settings", headers=headers, json={
        "hours": {"mon": "07:40-16:30"}, "roll_call": {"at": "07:50", "after_school_until": "17:30"}})
    assert good.status_code == 200, good.text
    saved = admin_stack.client.get("/v1/admin/settings", headers=headers).json()["settings"]
    assert saved["roll_call"] == {"enabled": True, "at": "07:50", "after_school_until": "17:30"}
