"""`/staff/report` and `/staff/report.csv`: the weekly report for the school's leaders.

Chinese first, English with `?lang=en`. The charts are inline SVG drawn by the template from
the geometry computed here: no script (the pages' CSP allows none inline) and no style
attribute (SVG presentation attributes carry the colours).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from relay.api.deps import RuntimeDep
from relay.base import clock
from relay.core.permissions import LEADERS
from relay.pages.i18n import words
from relay.pages.sessions import SignedIn, StaffSession
from relay.pages.views import class_name, staff_name
from relay.pages.web import lang_of, render
from relay.school import report
from routing.calendar import CalendarUnknown, DayKind, SchoolCalendar
from routing.directory import School
from routing.labels import CATEGORY_WORDS, URGENCY_WORDS, Category, Urgency

router = APIRouter(include_in_schema=False)

Week = Annotated[str, Query(max_length=10)]
Table = Annotated[str, Query(max_length=20)]

COLOURS = {"P0": "#b71c1c", "P1": "#bf360c", "P2": "#1565c0", "P3": "#616161"}

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "每周报告", "week": "本周", "prev": "上一周", "next": "下一周", "csv": "下载 CSV",
        "leaders_only": "此报告仅限校长、值班领导和管理员查看。", "total": "共收到请求",
        "by_day": "每日请求（按紧急程度）", "by_category": "按类别和紧急程度", "category": "类别",
        "per_teacher": "按时率（按教务老师）", "teacher": "负责人", "requests": "请求数",
        "ack_on_time": "按时接收", "resolve_on_time": "按时办结", "median_ack": "接收用时中位数",
        "median_reply": "首次回复用时中位数",
        "open": "未办结", "overdue": "已超时", "per_urgency": "按紧急程度", "urgency": "紧急程度",
        "escalated": "已升级的请求", "overdue_list": "超时未办的请求（紧急的在前）", "received": "收到时间", "class": "班级",
        "status": "状态", "due": "截止", "step": "升级级数", "none": "无",
        "held": "非工作时间收到、次日早上汇总发送的消息", "sum": "合计",
        "dead": "最终没有送达的通知", "dead_none": "本周所有通知都已送达。", "event": "通知", "to": "接收人",
        "no_data": "—", "chart_ack": "按时接收率", "as_of": "统计截至", "more": "仅显示前 50 条，完整列表见 CSV。",
        "s_received": "待接收", "s_acknowledged": "已接收", "s_answered": "已回复", "s_resolved": "已办结",
        "yes": "是", "no": "否",
        "out_of_hours": "非工作时间收到的通知（按接收人和类型）", "out_of_hours_none": "本周没有人在非工作时间收到通知。",
        "k_p0_page": "紧急呼叫", "k_escalation": "升级", "k_on_duty": "值班（学生仍在校）", "k_digest": "今日汇总",
        "k_new_request": "新请求", "k_fyi": "知悉抄送", "k_other": "其他",
    },
    "en": {
        "title": "Weekly report", "week": "Week", "prev": "Previous week", "next": "Next week", "csv": "Download CSV",
        "leaders_only": "This report is for the principal, the duty leader and administrators.",
        "total": "Requests received", "by_day": "Requests per day (by urgency)",
        "by_category": "By category and urgency", "category": "Category",
        "per_teacher": "On time, per academic-affairs teacher", "teacher": "Owner", "requests": "Requests",
        "ack_on_time": "Acknowledged on time", "resolve_on_time": "Resolved on time",
        "median_ack": "Median time to acknowledge", "median_reply": "Median time to first reply", "open": "Open",
        "overdue": "Overdue",
        "per_urgency": "Per urgency", "urgency": "Urgency", "escalated": "Escalated requests",
        "overdue_list": "Overdue requests (emergencies first)", "received": "Received", "class": "Class", "status": "Status",
        "due": "Due", "step": "Escalation step", "none": "None",
        "held": "Received out of hours and held for the morning digest", "sum": "Total",
        "dead": "Notifications that never arrived", "dead_none": "Every notification arrived this week.", "event": "Notification",
        "to": "To", "no_data": "—", "chart_ack": "Acknowledged on time", "as_of": "As of",
        "more": "Only the first 50 are shown; the CSV has them all.",
        "s_received": "Waiting", "s_acknowledged": "Acknowledged", "s_answered": "Answered",
        "s_resolved": "Resolved", "yes": "yes", "no": "no",
        "out_of_hours": "Notifications received outside school hours (by person and kind)",
        "out_of_hours_none": "Nobody was notified outside school hours this week.",
        "k_p0_page": "P0 page", "k_escalation": "Escalation", "k_on_duty": "On duty (child on site)",
        "k_digest": "Digest", "k_new_request": "New request", "k_fyi": "FYI copy", "k_other": "Other",
    },
}

_CATEGORY_EN = {c.value: c.value for c in Category}
_URGENCY_EN = {"P0": "emergency", "P1": "today", "P2": "routine", "P3": "no action"}


def is_leader(session: StaffSession) -> bool:
    return bool(set(session.member.roles) & LEADERS)


def duration_words(seconds: float | None, lang: str) -> str:
    """`95` → "1分35秒" / "1m 35s": the unit changes with the size, two units at most."""
    if seconds is None:
        return "—"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = ("天", "小时", "分", "秒") if lang == "zh" else ("d ", "h ", "m ", "s")
    parts = [(days, units[0]), (hours, units[1]), (minutes, units[2]), (secs, units[3])]
    shown = [f"{n}{u}" for n, u in parts if n][:2]
    return ("".join(shown) if shown else f"0{units[3]}").strip()


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def category_words(category: str, lang: str) -> str:
    if lang == "en":
        return _CATEGORY_EN.get(category, category)
    return CATEGORY_WORDS.get(Category(category), category) if category in _CATEGORY_EN else category


def urgency_words(urgency: str, lang: str) -> str:
    if lang == "en":
        return f"{urgency} {_URGENCY_EN.get(urgency, '')}".strip()
    return f"{urgency} {URGENCY_WORDS[Urgency(urgency)]}" if urgency in _URGENCY_EN else urgency


def _day_mark(calendar: SchoolCalendar, day: dt.date, lang: str) -> str:
    """调休 or 假 under a day that is not an ordinary one: a quiet Friday is then no surprise."""
    try:
        kind = calendar.day(day).kind
    except CalendarUnknown:
        return ""
    marks = {DayKind.makeup: ("调休", "make-up"), DayKind.holiday: ("假", "holiday"),
             DayKind.vacation: ("假期", "vacation"), DayKind.closure: ("停课", "closed")}
    mark = marks.get(kind)
    return "" if mark is None else f"({mark[0] if lang == 'zh' else mark[1]})"


def day_bars(week: report.WeekReport, school: School, lang: str, height: int = 140, bar: int = 64) -> dict[str, Any]:
    """Stacked bars, one per day: rectangles with their colour and a label, in SVG user units."""
    top = max([sum(c.values()) for c in week.by_day.values()] + [1])
    calendar = SchoolCalendar(school)
    pad = 24  # room above the tallest bar for its total
    columns = []
    for n, (day, counts) in enumerate(sorted(week.by_day.items())):
        x, y = 40 + n * (bar + 16), height + pad
        rects = []
        for urgency in report.URGENCIES:
            h = round(counts[urgency] * height / top)
            if h:
                y -= h
                rects.append({"x": x, "y": y, "w": bar, "h": h, "fill": COLOURS[urgency],
                              "title": f"{day} {urgency}: {counts[urgency]}"})
        date = dt.date.fromisoformat(day)
        weekday = ("周" + "一二三四五六日"[date.weekday()]) if lang == "zh" else \
            ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[date.weekday()]
        columns.append({"rects": rects, "x": x + bar // 2, "total": sum(counts.values()), "top_y": y - 6,
                        "label": f"{day[5:]} {weekday}", "mark": _day_mark(calendar, date, lang)})
    return {"width": 40 + 7 * (bar + 16), "height": height + pad + 44, "base": height + pad, "columns": columns}


def rate_bars(rows: list[report.Row], width: int = 320) -> list[dict[str, Any]]:
    """One horizontal bar per teacher: the share of acknowledgements on time."""
    out = []
    for n, row in enumerate(rows):
        rate = row.ack.rate
        out.append({"y": 8 + n * 30, "w": round((rate or 0) * width), "label": row.label, "text": percent(rate),
                    "fill": "#1b5e20" if (rate or 0) >= 0.9 else "#bf360c"})
    return out


def _week_of(week: str, today: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(week) if week else report.week_start(today)
    except ValueError:
        return report.week_start(today)


def _build(runtime: Any, session: StaffSession, week: str) -> report.WeekReport:
    school = session.school
    now = clock.now_in(school.zone)
    return report.build(runtime.redis, school, _week_of(week, now.date()), now)


@router.get("/staff/report")
async def report_page(request: Request, session: SignedIn, runtime: RuntimeDep, week: Week = "") -> HTMLResponse:
    lang = lang_of(request)
    r = WORDS[lang]
    t = words(lang)
    if not is_leader(session):
        return render(request, "staff_report.html", 403, session=session, r=r, forbidden=True)
    built = _build(runtime, session, week)
    school = session.school
    teachers = [row for row in built.per_teacher if row.requests or school.staff_member(row.key)]
    return render(
        request, "staff_report.html", session=session, r=r, forbidden=False, week=built,
        prev=(built.start - dt.timedelta(days=7)).isoformat(), next=built.end.isoformat(),
        last_day=(built.end - dt.timedelta(days=1)).isoformat(),
        categories=[(category_words(c, lang), counts) for c, counts in built.by_category.items() if counts],
        urgencies=report.URGENCIES, urgency_words={u: urgency_words(u, lang) for u in report.URGENCIES},
        teachers=teachers, urgency_rows=[built.by_urgency[u] for u in report.URGENCIES],
        days=day_bars(built, school, lang), rates=rate_bars(teachers), colours=COLOURS,
        duration=lambda s: duration_words(s, lang), percent=percent,
        overdue=[_row(school, line, lang) for line in overdue_first(built.overdue)[: report.LIST_LIMIT]],
        escalated=[_row(school, line, lang) for line in built.escalated[: report.LIST_LIMIT]],
        dead=[{"event": t.get("e_" + str(d.get("event", "")), str(d.get("event", ""))),
               "to": staff_name(school, d.get("staff_id")) or t["by_guardian"],
               "urgency": urgency_words(str(d.get("urgency", "")), lang) if d.get("urgency") else ""}
              for d in built.dead_letters[: report.LIST_LIMIT]],
        held_days=sorted(built.held_by_day.items()),
        out_of_hours=built.out_of_hours, out_of_hours_kinds=report.OUT_OF_HOURS_KINDS,
    )


def overdue_first(lines: list[report.Line]) -> list[report.Line]:
    """Overdue requests, the most urgent first, then the longest overdue: a principal reads the top."""
    return sorted(lines, key=lambda line: (line.record.urgency, line.record.next_due() or ""))


def _row(school: Any, line: report.Line, lang: str) -> dict[str, Any]:
    record = line.record
    return {
        "id": record.id, "url": f"/staff/requests/{record.id}", "received": record.created_at,
        "class": class_name(school, record.class_id), "category": category_words(record.category, lang),
        "urgency": record.urgency, "owner": staff_name(school, record.owner), "status": record.status.value,
        "due": record.next_due(), "step": record.escalation_step,
    }


VERDICT_WORDS = {"on_time": "按时", "late": "超时", "pending": "未到期"}

def _verdict(value: str | None, zh: bool) -> str:
    return (VERDICT_WORDS.get(value, value) if zh and value else value) or ""


CSV_COLUMNS = {
    "zh": ("编号", "收到时间", "班级", "类别", "紧急程度", "负责人", "状态", "应接收时间", "接收时间", "按时接收",
           "应办结时间", "办结时间", "按时办结", "升级级数", "次日早上汇总"),
    "en": ("id", "received", "class", "category", "urgency", "owner", "status", "ack_due_at", "acknowledged_at",
           "ack_on_time", "resolve_due_at", "resolved_at", "resolved_on_time", "escalation_step", "held_for_morning"),
}


def _out_of_hours_rows(built: report.WeekReport, lang: str) -> list[list[object]]:
    words = WORDS[lang]
    head: list[object] = [words["to"], *(words[f"k_{k}"] for k in report.OUT_OF_HOURS_KINDS), words["sum"]]
    return [head] + [[row.label, *(row.by_kind[k] for k in report.OUT_OF_HOURS_KINDS), row.total]
                     for row in built.out_of_hours]


@router.get("/staff/report.csv")
async def report_csv(request: Request, session: SignedIn, runtime: RuntimeDep, week: Week = "",
                     table: Table = "") -> Response:
    """One line per request of the week (no message text, no child's name): for a spreadsheet. With
    `table=out_of_hours`: one line per staff member notified outside school hours, by kind."""
    lang = lang_of(request)
    if not is_leader(session):
        return Response(WORDS[lang]["leaders_only"], status_code=403, media_type="text/plain; charset=utf-8")
    built = _build(runtime, session, week)
    school = session.school
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads UTF-8 (Chinese) correctly only with a BOM
    writer = csv.writer(out)
    if table == "out_of_hours":
        writer.writerows(_out_of_hours_rows(built, lang))
        name = f"relay-out-of-hours-{school.id}-{built.start.isoformat()}.csv"
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
    writer.writerow(CSV_COLUMNS[lang])
    for line in built.lines:
        record = line.record
        zh = lang == "zh"  # a Chinese spreadsheet gets words and names; the English one keeps codes for tools
        writer.writerow([
            record.id, record.created_at, class_name(school, record.class_id),
            category_words(record.category, lang) if zh else record.category,
            urgency_words(record.urgency, lang) if zh else record.urgency,
            staff_name(school, record.owner) if zh else record.owner,
            WORDS[lang]["s_" + record.status.value] if zh else record.status.value, record.ack_due_at or "", record.acknowledged_at or "",
            _verdict(line.ack_verdict, zh), record.resolve_due_at or "", record.resolved_at or "",
            _verdict(line.resolve_verdict, zh),
            record.escalation_step, int(line.held_for_morning),
        ])
    name = f"relay-report-{school.id}-{built.start.isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
