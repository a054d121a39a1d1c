"""The school-day calendar, with injected times only: holidays, 调休, vacations, closures, ETAs."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from routing.calendar import (
    CalendarUnknown,
    DayKind,
    SchoolCalendar,
    calendar_days,
    eta,
    eta_text,
    missing_years,
    quiet_until,
    sla_due,
    unknown_years,
)
from routing.classifier import Classification
from routing.directory import Directory, School
from routing.durations import parse_duration
from routing.labels import Category, Urgency
from routing.plan import RoutingPlan, plan

SHANGHAI = ZoneInfo("Asia/Shanghai")

# The real 2025-26 and 2026-27 terms of a Liaoning primary school.
TERMS_2026 = [
    {"name": "2025-2026学年第一学期", "start": "2025-09-01", "end": "2026-01-16"},
    {"name": "2025-2026学年第二学期", "start": "2026-03-02", "end": "2026-07-10"},
    {"name": "2026-2027学年第一学期", "start": "2026-09-01", "end": "2027-01-22"},
]


def school(**extra: Any) -> School:
    return School.model_validate({"id": "hld-xc-01", "name": "兴城市第一小学", **extra})


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def day_of(s: School, text: str) -> dict[str, object]:
    return calendar_days(s, dt.date.fromisoformat(text), 1)[0]


# Days -----------------------------------------------------------------------------------------


def test_national_day_2026_is_closed_from_october_1_to_7() -> None:
    days = calendar_days(school(), dt.date(2026, 9, 30), 9)
    assert [d["school_day"] for d in days] == [True] + [False] * 7 + [True]
    assert days[1] == {
        "date": "2026-10-01",
        "school_day": False,
        "reason": "holiday: National Day 国庆节",
        "hours": None,
    }
    # Tuesday and Wednesday off in lieu are holidays too, not plain weekdays.
    assert days[6]["reason"] == days[7]["reason"] == "holiday: National Day 国庆节"
    assert days[8] == {
        "date": "2026-10-08",
        "school_day": True,
        "reason": "school day",
        "hours": "08:00-17:00",
    }


def test_spring_festival_2026_with_its_two_make_up_saturdays() -> None:
    s = school()
    assert day_of(s, "2026-02-14") == {
        "date": "2026-02-14",
        "school_day": True,
        "reason": "make-up workday (调休) for Spring Festival",
        "hours": "08:00-17:00",
    }
    for date in ("2026-02-15", "2026-02-17", "2026-02-20", "2026-02-23"):
        assert day_of(s, date)["reason"] == "holiday: Spring Festival 春节"
    assert day_of(s, "2026-02-28")["school_day"] is True
    assert day_of(s, "2026-02-24")["reason"] == "school day"


@pytest.mark.parametrize(
    ("date", "holiday"),
    [
        ("2026-01-04", "New Year's Day"),  # Sunday
        ("2026-05-09", "Labour Day"),  # Saturday
        ("2026-09-20", "National Day"),  # Sunday
        ("2026-10-10", "National Day"),  # Saturday
    ],
)
def test_make_up_workdays_of_2026_are_school_days(date: str, holiday: str) -> None:
    line = day_of(school(), date)
    assert line["school_day"] is True
    assert line["reason"] == f"make-up workday (调休) for {holiday}"


def test_a_make_up_workday_keeps_the_timetable_of_the_weekday_it_stands_for() -> None:
    hours = {"mon": "08:00-17:00", "tue": "08:00-16:00", "wed": "08:00-12:00", "thu": "08:00-17:00"}
    s = school(hours=hours | {"fri": "08:00-15:30"})
    # 09-20 (Sun) works for Tuesday 10-06, 10-10 (Sat) for Wednesday 10-07, 02-14 (Sat) for Friday 02-20.
    assert day_of(s, "2026-09-20")["hours"] == "08:00-16:00"
    assert day_of(s, "2026-10-10")["hours"] == "08:00-12:00"
    assert day_of(s, "2026-02-14")["hours"] == "08:00-15:30"


def test_a_make_up_workday_without_a_known_weekday_uses_mondays_hours() -> None:
    # 2018's Spring Festival: two make-up Sundays/Saturdays for three days in lieu, no honest pairing.
    s = school(hours={"mon": "07:50-16:30", "tue": "08:00-17:00"})
    assert day_of(s, "2018-02-11")["hours"] == "07:50-16:30"


def test_ordinary_weekend_and_a_weekday_without_hours() -> None:
    s = school(hours={"mon": "08:00-17:00", "tue": "08:00-17:00", "thu": "08:00-17:00", "fri": "08:00-17:00"})
    assert day_of(s, "2026-03-07") == {
        "date": "2026-03-07",
        "school_day": False,
        "reason": "weekend",
        "hours": None,
    }
    assert day_of(s, "2026-03-11")["reason"] == "no school hours on wed"


def test_days_outside_the_terms_are_named_vacations() -> None:
    s = school(terms=TERMS_2026)
    assert day_of(s, "2026-01-16")["school_day"] is True  # last day of the autumn term
    assert day_of(s, "2026-01-19") == {
        "date": "2026-01-19",
        "school_day": False,
        "reason": "vacation: 寒假",
        "hours": None,
    }
    # A make-up Saturday inside 寒假 brings no pupils back; March 1 still belongs to 寒假.
    assert day_of(s, "2026-02-14")["reason"] == "vacation: 寒假"
    assert day_of(s, "2026-03-01")["reason"] == "vacation: 寒假"
    assert day_of(s, "2026-03-02")["school_day"] is True
    assert day_of(s, "2026-07-13")["reason"] == "vacation: 暑假"
    assert day_of(s, "2026-08-31")["reason"] == "vacation: 暑假"


def test_a_short_break_between_terms_is_just_a_vacation() -> None:
    s = school(
        terms=[
            {"name": "第一学段", "start": "2026-03-02", "end": "2026-04-24"},
            {"name": "第二学段", "start": "2026-05-11", "end": "2026-07-10"},
        ]
    )
    assert day_of(s, "2026-04-28")["reason"] == "vacation"


def test_a_holiday_inside_term_is_closed_and_vacation_wins_over_holiday() -> None:
    s = school(terms=TERMS_2026)
    assert day_of(s, "2026-10-01")["reason"] == "holiday: National Day 国庆节"
    assert day_of(s, "2026-02-17")["reason"] == "vacation: 寒假"


def test_closures_from_the_configuration() -> None:
    s = school(
        terms=TERMS_2026,
        closures=[
            {"start": "2026-04-24", "reason": "运动会"},
            {"start": "2026-06-12", "end": "2026-06-15", "reason": "中考考点"},
        ],
    )
    assert day_of(s, "2026-04-24") == {
        "date": "2026-04-24",
        "school_day": False,
        "reason": "closure: 运动会",
        "hours": None,
    }
    assert day_of(s, "2026-04-23")["school_day"] is True
    assert [d["reason"] for d in calendar_days(s, dt.date(2026, 6, 12), 5)] == [
        "closure: 中考考点",
        "closure: 中考考点",
        "closure: 中考考点",
        "closure: 中考考点",
        "school day",
    ]


def test_calendar_days_counts_exactly() -> None:
    assert calendar_days(school(), dt.date(2026, 3, 2), 0) == []
    assert len(calendar_days(school(), dt.date(2026, 3, 2), 31)) == 31
    with pytest.raises(ValueError):
        calendar_days(school(), dt.date(2026, 3, 2), -1)


# Unknown years --------------------------------------------------------------------------------


def test_a_year_nobody_knows_is_planned_with_weekdays_and_marked_estimated() -> None:
    days = calendar_days(school(), dt.date(2026, 12, 1), 60)

    assert len(days) == 60
    assert not any("estimated" in d for d in days if str(d["date"]) < "2027")
    later = [d for d in days if str(d["date"]) >= "2027"]
    assert later and all(d["estimated"] is True for d in later)
    by_date = {d["date"]: d for d in later}
    assert by_date["2027-01-02"]["reason"] == "weekend" and by_date["2027-01-02"]["school_day"] is False
    assert by_date["2027-01-04"]["reason"] == "school day" and by_date["2027-01-04"]["school_day"] is True
    # Thursday 31 December evening: a P2's clock starts in 2027, which nobody knows: an estimate, not a refusal.
    line = eta(school(), "P2", at("2026-12-31T20:00"))
    assert line["estimated"] is True and line["ack_due_at"] == "2027-01-01T17:00:00+08:00"
    assert "estimated" not in eta(school(), "P2", at("2026-12-28T10:00"))  # due within 2026: known
    assert "estimated" not in eta(school(), "P0", at("2027-03-01T10:00"))  # the wall clock needs no calendar


def test_the_entered_calendar_decides_a_year_chinese_calendar_does_not_know() -> None:
    s = school(calendar={"holidays": [{"from": "2027-02-05", "to": "2027-02-11", "name": "春节"},
                                      {"date": "2027-01-01", "name": "元旦"}],
                         "workdays": [{"date": "2027-02-14", "name": "春节调休"}]})

    assert day_of(s, "2027-01-01") == {"date": "2027-01-01", "school_day": False,
                                       "reason": "holiday: New Year's Day 元旦", "hours": None}
    assert day_of(s, "2027-02-08")["reason"] == "holiday: Spring Festival 春节"
    assert day_of(s, "2027-02-14") == {"date": "2027-02-14", "school_day": True,
                                       "reason": "make-up workday (调休) for Spring Festival", "hours": "08:00-17:00"}
    assert day_of(s, "2027-03-01") == {"date": "2027-03-01", "school_day": True, "reason": "school day",
                                       "hours": "08:00-17:00"}  # an entered year is known: no estimate
    line = eta(s, "P2", at("2027-02-04T18:00"))  # Thursday evening before the Spring Festival
    assert line["ack_due_at"] == "2027-02-12T17:00:00+08:00" and "estimated" not in line
    assert "春节放假" in str(line["eta_text"])
    assert unknown_years(s, [2027]) == [] and unknown_years(school(), [2027]) == [2027]


def test_entered_dates_win_over_chinese_calendar() -> None:
    # chinese-calendar: 2026-10-09 (Friday) is a school day, 2026-10-10 (Saturday) a make-up workday.
    s = school(calendar={"holidays": [{"date": "2026-10-09", "name": "校庆"}],
                         "workdays": [{"date": "2026-10-11", "name": "国庆节调休"}]})
    assert day_of(s, "2026-10-09")["reason"] == "holiday: 校庆"
    assert day_of(s, "2026-10-11")["school_day"] is True
    assert day_of(s, "2026-10-10")["reason"].startswith("make-up workday")  # not entered: chinese-calendar's
    assert day_of(s, "2026-10-01")["reason"] == "holiday: National Day 国庆节"


def test_the_files_calendar_is_shared_by_its_schools_unless_a_school_has_its_own() -> None:
    entered = {"holidays": [{"date": "2027-01-01", "name": "元旦"}]}
    directory = Directory.model_validate({"calendar": entered, "schools": [
        {"id": "a", "name": "A"}, {"id": "b", "name": "B", "calendar": {"workdays": []}}]})
    assert [d["reason"] for d in (day_of(s, "2027-01-01") for s in directory.schools)] == [
        "holiday: New Year's Day 元旦", "school day"]
    # A school's version keeps its calendar (the snapshot every process reads).
    again = School.model_validate_json(directory.schools[0].model_dump_json())
    assert again.calendar == directory.schools[0].calendar


def test_operators_are_warned_from_november_when_next_years_holidays_are_missing() -> None:
    assert missing_years(school(), dt.date(2026, 10, 31)) == []
    assert missing_years(school(), dt.date(2026, 11, 1)) == [2027]
    assert missing_years(school(), dt.date(2027, 1, 5)) == [2027]  # and the year itself, once it has begun
    entered = school(calendar={"holidays": [{"from": "2027-02-05", "to": "2027-02-11", "name": "春节"}]})
    assert missing_years(entered, dt.date(2026, 12, 6)) == []


def test_vacation_and_closures_in_an_unknown_year_need_no_holiday_data() -> None:
    s = school(terms=TERMS_2026, closures=[{"start": "2027-01-20", "reason": "期末考试"}])
    assert day_of(s, "2027-07-20")["reason"] == "vacation: 暑假"
    assert day_of(s, "2027-01-20")["reason"] == "closure: 期末考试"


def test_unknown_years_for_config_check() -> None:
    assert unknown_years(school(terms=TERMS_2026)) == [2027]
    assert unknown_years(school(), [2025, 2026]) == []
    assert unknown_years(school(), [2003, 2026, 2028]) == [2003, 2028]


def test_past_the_configured_terms_the_usual_school_year_is_estimated() -> None:
    s = school(terms=[{"name": "下学期", "start": "2026-03-02", "end": "2026-07-10"}])
    calendar = SchoolCalendar(s)
    assert calendar.next_opening(at("2026-07-11T09:00")) == at("2026-09-01T08:00")  # summer, then a Tuesday
    assert calendar.past_terms_end == dt.date(2026, 7, 10) and calendar.estimated
    assert day_of(s, "2026-07-20") | {"estimated": True} == day_of(s, "2026-07-20")
    assert day_of(s, "2026-07-20")["reason"] == "vacation: 暑假"
    assert day_of(s, "2027-02-10")["reason"] == "vacation: 寒假"
    assert day_of(s, "2026-07-10") == {"date": "2026-07-10", "school_day": True, "reason": "school day",
                                       "hours": "08:00-17:00"}


def test_no_school_day_ahead_is_unknown_too() -> None:
    with pytest.raises(CalendarUnknown, match="terms"):
        SchoolCalendar(school(hours={})).next_opening(at("2026-07-11T09:00"))


# Due times ------------------------------------------------------------------------------------


def test_p2_on_friday_evening_before_a_holiday_is_due_on_the_first_school_day_after_it() -> None:
    # Qingming 2026: Sat 04-04 to Mon 04-06.
    line = eta(school(), "P2", at("2026-04-03T20:00"))
    assert line["ack_due_at"] == "2026-04-07T17:00:00+08:00"
    assert line["resolve_due_at"] == "2026-04-08T17:00:00+08:00"
    assert line["eta_text"] == "预计下周二下午 5:00 前回复（清明节放假）"


def test_p2_before_labour_day_waits_the_five_days() -> None:
    line = eta(school(), Urgency.P2, at("2026-04-30T20:00"))
    assert line["ack_due_at"] == "2026-05-06T17:00:00+08:00"


def test_a_make_up_saturday_counts_as_a_school_day() -> None:
    # Friday 10-09 evening: the next school day is the make-up Saturday 10-10.
    line = eta(school(), "P2", at("2026-10-09T20:00"))
    assert line["ack_due_at"] == "2026-10-10T17:00:00+08:00"
    assert line["eta_text"] == "预计明天（周六）下午 5:00 前回复"
    # Friday 09-18 evening: Sunday 09-20 is a make-up workday, Saturday is not.
    assert eta(school(), "P2", at("2026-09-18T20:00"))["ack_due_at"] == "2026-09-20T17:00:00+08:00"


def test_one_school_day_from_mid_day_ends_at_the_same_time_next_school_day() -> None:
    line = eta(school(), "P2", at("2026-03-11T16:59"))
    assert line["ack_due_at"] == "2026-03-12T16:59:00+08:00"
    assert line["resolve_due_at"] == "2026-03-13T16:59:00+08:00"
    # Friday 10:00: one school day on is Monday 10:00.
    assert eta(school(), "P2", at("2026-03-13T10:00"))["ack_due_at"] == "2026-03-16T10:00:00+08:00"


def test_a_school_day_ends_no_later_than_that_days_closing() -> None:
    s = school(hours={"thu": "08:00-17:00", "fri": "08:00-12:00"})
    assert sla_due(s, Urgency.P2, at("2026-03-12T15:00")).ack_due_at == at("2026-03-13T12:00")


def test_p1_thirty_school_minutes_across_closing_time() -> None:
    line = eta(school(), "P1", at("2026-03-11T16:45"))
    # 15 minutes today, 15 tomorrow after 08:00; 4 school hours end at 11:45.
    assert line["ack_due_at"] == "2026-03-12T08:15:00+08:00"
    assert line["resolve_due_at"] == "2026-03-12T11:45:00+08:00"
    assert line["eta_text"] == "预计明天（周四）上午 8:15 前回复"


def test_p1_within_hours_is_thirty_minutes() -> None:
    assert eta(school(), "P1", at("2026-03-11T10:00"))["ack_due_at"] == "2026-03-11T10:30:00+08:00"


def test_p0_runs_on_the_wall_clock_even_on_a_holiday_night() -> None:
    line = eta(school(), "P0", at("2026-10-03T23:59"))
    assert line == {
        "ack_due_at": "2026-10-04T00:01:00+08:00",
        "resolve_due_at": "2026-10-04T01:59:00+08:00",
        "eta_text": "预计明天（周日）凌晨 0:01 前回复",
    }


def test_p3_has_no_acknowledgement_due() -> None:
    line = eta(school(), "P3", at("2026-03-11T10:00"))
    assert line["ack_due_at"] is None
    assert line["resolve_due_at"] == "2026-03-16T10:00:00+08:00"


def test_eta_answers_in_the_schools_offset_whatever_the_input_zone() -> None:
    moment = dt.datetime(2026, 3, 11, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    assert eta(school(), "P1", moment)["ack_due_at"] == "2026-03-11T10:30:00+08:00"


def test_escalation_chains_from_a_closing_time_keep_counting() -> None:
    calendar = SchoolCalendar(school())
    first = calendar.due(at("2026-03-11T16:40"), parse_duration("20m"), school_time=True)
    assert first == at("2026-03-11T17:00")
    assert calendar.due(first, parse_duration("30m"), school_time=True) == at("2026-03-12T08:30")


def test_naive_moments_are_refused_by_the_calendar() -> None:
    with pytest.raises(ValueError):
        SchoolCalendar(school()).next_opening(dt.datetime(2026, 3, 11, 10, 0))


# What the parent reads ------------------------------------------------------------------------


def test_tomorrow_monday_nine() -> None:
    s = school(hours={day: "08:30-17:00" for day in ("mon", "tue", "wed", "thu", "fri")})
    line = eta(s, "P1", at("2026-03-08T20:00"))  # Sunday evening
    assert line["eta_text"] == "预计明天（周一）上午 9:00 前回复"
    assert (
        eta(s, "P1", at("2026-03-08T20:00"), lang="en")["eta_text"] == "Expected reply by tomorrow (Mon) 9:00"
    )


def test_today_weekday_and_next_week_words() -> None:
    zone = SHANGHAI
    wednesday = at("2026-03-11T10:00")
    assert eta_text(at("2026-03-11T15:30"), wednesday, zone) == "预计今天下午 3:30 前回复"
    assert eta_text(at("2026-03-11T12:10"), wednesday, zone) == "预计今天中午 12:10 前回复"
    assert eta_text(at("2026-03-13T09:00"), wednesday, zone) == "预计周五上午 9:00 前回复"
    assert eta_text(at("2026-03-16T09:00"), wednesday, zone) == "预计下周一上午 9:00 前回复"
    assert eta_text(at("2026-03-11T19:00"), wednesday, zone) == "预计今天晚上 7:00 前回复"
    assert eta_text(at("2026-03-13T09:00"), wednesday, zone, lang="en") == "Expected reply by Fri 9:00"
    assert eta_text(at("2026-03-11T15:30"), wednesday, zone, lang="en") == "Expected reply by today 15:30"


def test_beyond_a_week_the_date_is_said() -> None:
    wednesday = at("2026-03-11T10:00")
    assert eta_text(at("2026-03-18T09:00"), wednesday, SHANGHAI) == "预计 3月18日（周三）上午 9:00 前回复"
    assert (
        eta_text(at("2026-03-18T09:00"), wednesday, SHANGHAI, lang="en")
        == "Expected reply by 18 Mar (Wed) 9:00"
    )


def test_over_winter_vacation_the_parent_is_told_the_date_and_why() -> None:
    terms = [
        {"name": "上学期", "start": "2025-09-01", "end": "2026-01-16"},
        {"name": "下学期", "start": "2026-02-24", "end": "2026-07-10"},
    ]
    s = school(terms=terms, hours={day: "08:30-17:00" for day in ("mon", "tue", "wed", "thu", "fri")})
    line = eta(s, "P1", at("2026-02-10T10:00"))
    assert line["ack_due_at"] == "2026-02-24T09:00:00+08:00"
    assert line["eta_text"] == "预计 2月24日（周二）上午 9:00 前回复（寒假期间）"
    assert eta(s, "P1", at("2026-02-10T10:00"), lang="en")["eta_text"] == (
        "Expected reply by 24 Feb (Tue) 9:00 (winter vacation)"
    )


def test_over_summer_vacation_and_national_day() -> None:
    s = school(terms=TERMS_2026)
    assert (
        eta(s, "P2", at("2026-07-20T09:00"))["eta_text"] == "预计 9月1日（周二）下午 5:00 前回复（暑假期间）"
    )
    line = eta(s, "P2", at("2026-09-30T20:00"))
    assert line["ack_due_at"] == "2026-10-08T17:00:00+08:00"
    assert line["eta_text"] == "预计 10月8日（周四）下午 5:00 前回复（国庆节放假）"
    assert eta(s, "P2", at("2026-09-30T20:00"), lang="en")["eta_text"] == (
        "Expected reply by 8 Oct (Thu) 17:00 (National Day holiday)"
    )


def test_eta_text_without_a_calendar_stays_plain() -> None:
    text = eta_text(at("2026-10-08T17:00"), at("2026-09-30T20:00"), SHANGHAI)
    assert text == "预计 10月8日（周四）下午 5:00 前回复"
    with pytest.raises(ValueError):
        eta_text(at("2026-10-08T17:00"), at("2026-09-30T20:00"), SHANGHAI, lang="fr")


# Quiet hours ----------------------------------------------------------------------------------


def test_quiet_until_is_none_in_school_hours() -> None:
    assert quiet_until(school(), at("2026-03-11T10:00")) is None
    assert quiet_until(school(), at("2026-03-11T08:00")) is None


def test_quiet_until_is_the_next_opening_out_of_hours() -> None:
    s = school(terms=TERMS_2026)
    assert quiet_until(s, at("2026-03-11T17:00")) == at("2026-03-12T08:00")
    assert quiet_until(s, at("2026-03-12T06:30")) == at("2026-03-12T08:00")
    assert quiet_until(s, at("2026-04-03T18:00")) == at("2026-04-07T08:00")  # over Qingming
    assert quiet_until(s, at("2026-10-09T20:00")) == at("2026-10-10T08:00")  # make-up Saturday
    assert quiet_until(s, at("2026-01-20T10:00")) == at("2026-03-02T08:00")  # 寒假


def test_day_kinds_for_callers() -> None:
    calendar = SchoolCalendar(school(terms=TERMS_2026))
    assert calendar.day(dt.date(2026, 10, 1)).kind is DayKind.holiday
    assert calendar.day(dt.date(2026, 10, 1)).name == "国庆节"
    assert calendar.day(dt.date(2026, 10, 10)).kind is DayKind.makeup
    assert calendar.day(dt.date(2026, 8, 1)).name == "暑假"


# Through routing.plan: what intake stores (due times, the escalation snapshot, the digest hour) ------


def staffed_school() -> School:
    def member(staff_id: str, role: str, **extra: Any) -> dict[str, Any]:
        return {"id": staff_id, "name": staff_id, "roles": [role],
                "contacts": [{"channel": "webhook", "url": f"http://127.0.0.1:9/{staff_id}"}], **extra}

    return school(
        staff=[member("aa", "academic_affairs", backup="aa2"), member("aa2", "academic_affairs")],
        classes=[{"id": "c1", "name": "三年级2班", "academic_affairs": "aa"}],
        students=[{"id": "s1", "name": "张小明", "class_id": "c1", "guardians": [{"id": "g1", "name": "张妈妈"}]}],
        sla={"P2": {"ack_within": "1d", "resolve_within": "2d", "escalation": [{"after": "1d", "notify": ["backup"]}]}},
    )


def planned(urgency: Urgency, category: Category, when: str) -> RoutingPlan:
    s = staffed_school()
    student = s.student("s1")
    assert student is not None
    return plan(Classification(urgency, category, ("test",)), student, s, at(when))


def test_a_p2_the_evening_before_national_day_is_planned_for_the_first_school_day_after_it() -> None:
    # Wednesday 2026-09-30 20:00; 10-01..10-07 closed; Thursday 10-08 is the first school day.
    result = planned(Urgency.P2, Category.academic, "2026-09-30T20:00")
    assert result.school_time is True
    assert result.ack_due_at == at("2026-10-08T17:00")
    assert result.resolve_due_at == at("2026-10-09T17:00")
    assert [(s.due_at, s.notify) for s in result.escalation] == [(at("2026-10-08T17:00"), ("aa2",))]
    assert result.eta_text == "预计 10月8日（周四）下午 5:00 前回复（国庆节放假）"
    # Its notification is held for the digest at that day's opening.
    assert quiet_until(staffed_school(), at("2026-09-30T20:00")) == at("2026-10-08T08:00")


def test_a_p2_on_friday_evening_before_spring_festival_is_due_on_the_make_up_saturday() -> None:
    # Friday 2026-02-13 20:00: Saturday 02-14 is a make-up workday, then 02-15..02-23 are closed.
    result = planned(Urgency.P2, Category.admin, "2026-02-13T20:00")
    assert result.ack_due_at == at("2026-02-14T17:00")
    assert result.resolve_due_at == at("2026-02-24T17:00")
    assert result.eta_text == "预计明天（周六）下午 5:00 前回复"
    assert quiet_until(staffed_school(), at("2026-02-13T20:00")) == at("2026-02-14T08:00")


@pytest.mark.parametrize(("received", "due"), [
    ("2026-09-30T16:50", "2026-10-08T08:20"),  # 10 minutes before closing, then the holiday
    ("2026-10-09T16:50", "2026-10-10T08:20"),  # Friday: the make-up Saturday is the next school day
    ("2026-09-18T16:50", "2026-09-20T08:20"),  # Friday: Saturday is not, the make-up Sunday is
])
def test_p1_school_minutes_and_escalation_steps_skip_the_holiday_and_count_make_up_days(received: str, due: str) -> None:
    result = planned(Urgency.P1, Category.attendance, received)
    assert result.ack_due_at == at(due)
    assert [s.due_at for s in result.escalation] == [at(due)]  # the default P1 chain: backup after 30 school minutes


def test_intake_plans_into_a_year_nobody_knows_and_says_its_due_times_are_estimates() -> None:
    result = planned(Urgency.P2, Category.academic, "2026-12-31T20:00")
    assert result.estimated is True
    assert result.ack_due_at == at("2027-01-01T17:00")  # New Year's Day, unknown: a weekday
    assert planned(Urgency.P2, Category.academic, "2026-12-21T20:00").estimated is False
    assert planned(Urgency.P0, Category.medical, "2027-01-01T09:00").estimated is False  # the wall clock
