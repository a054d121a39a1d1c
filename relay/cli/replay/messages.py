"""A school week of parents' messages: when parents write, and how.

Each kind of message has its hours (absences 6:30-8:00, pickup changes 14:00-16:30,
homework questions 19:00-22:00, chatter on days off), a rate per class and per day, and
templates written the way parents write in a class chat: mostly Chinese, some English,
greetings or none, typos (做业, 请加), emoji. Everything comes from one seeded generator:
the same school, days and seed give the same messages, in the same order.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from routing.calendar import DayKind, SchoolCalendar, SchoolDay
from routing.directory import School, SchoolClass, Student

ENGLISH_SHARE = 0.06
TYPO_SHARE = 0.15
EMOJI_SHARE = 0.15
# Emergencies across the whole school (24 classes) in a week: during school hours, and in the evening.
EMERGENCIES_IN_SCHOOL_PER_WEEK = 3.0
EMERGENCIES_AT_NIGHT_PER_WEEK = 2.0
EMERGENCY_HOURS_IN_SCHOOL = ((8.5, 15.8),)
EMERGENCY_HOURS_AT_NIGHT = ((18.0, 22.5),)
ABSENCE_PEAK = 7.2  # the hour most absences are reported: before the 7:40 start
FULL_SCHOOL_CLASSES = 24


@dataclass(frozen=True)
class ParentMessage:
    index: int
    at: dt.datetime  # in the school's zone, whole seconds
    class_id: str
    student_id: str
    guardian_id: str
    text: str
    kind: str  # absence, late, pickup, homework, admin, notice, thanks, chatter, makeup_question, emergency
    intended: str  # the urgency a teacher reading it would give it
    # From a labelled corpus (`relay simulate --messages`): its category label, form hint, writer and line id.
    labelled_category: str | None = None
    category_hint: str | None = None
    writer: str = ""
    label_id: str = ""


@dataclass(frozen=True)
class Kind:
    name: str
    intended: str
    school_rate: float  # per class, per school day
    off_rate: float  # per class, per day without school
    school_hours: tuple[tuple[float, float], ...]
    off_hours: tuple[tuple[float, float], ...]
    zh: tuple[str, ...]
    en: tuple[str, ...] = ()


KINDS = (
    Kind("absence", "P1", 1.6, 0.0, ((6.5, 8.0),), (), (
        "{greet}{child}今天早上发烧{temp}度，请假一天{thanks}",
        "{greet}孩子肚子疼，拉了两次，今天在家休息，请假{thanks}",
        "{greet}{child}昨晚咳嗽一宿没睡好，今天请个假带去医院看看{thanks}",
        "{greet}家里有点事，{child}今天请假一天，明天正常到校{thanks}",
        "{greet}孩子嗓子疼还有点低烧，今天先不去学校了{thanks}",
        "{greet}{child}牙疼得厉害 上午请假去看牙 下午送过去{thanks}",
        "{greet}孩子早上吐了两回，今天请假观察一下{thanks}",
    ), (
        "Good morning, {en} has a fever ({temp}°C) and will stay home today. Thank you.",
        "Hi teacher, {en} is not feeling well this morning, so {en} will be absent today. Sorry for the short notice",
    )),
    Kind("late", "P1", 0.3, 0.0, ((7.0, 8.2),), (), (
        "{greet}路上堵车，{child}可能要晚到二十分钟{thanks}",
        "{greet}{child}起晚了，大概8点半到校，麻烦跟班主任说一声",
        "{greet}孩子早上去打疫苗，九点左右到学校{thanks}",
    ), ("We are stuck in traffic, {en} will be about 20 minutes late.",)),
    Kind("pickup", "P1", 0.9, 0.0, ((14.0, 16.5),), (), (
        "{greet}今天下午放学是{relative}来接{child}，麻烦跟孩子说一声{thanks}",
        "{greet}今天我加班，{child}放学先去托管班，6点我去接",
        "{greet}下午3点半能提前接一下{child}吗？要去医院复查",
        "{greet}今天{relative}接孩子，穿{colour}衣服，麻烦老师核对一下{thanks}",
        "{greet}今天放学晚点接，大概五点二十到，麻烦让孩子在门卫室等一下",
    ), (
        "Hi, {en}'s grandma will pick {en} up today instead of me.",
        "I'll be about 15 minutes late for pickup today, sorry! Could {en} wait at the gate?",
    )),
    Kind("homework", "P2", 1.3, 0.3, ((19.0, 22.0),), ((10.0, 21.5),), (
        "{greet}今天{subject}作业第{n}题是什么意思？孩子不会做",
        "{greet}请问今天的{subject}做业是哪几页啊 孩子没记全😅",
        "{greet}{subject}练习册第{page}页要做吗？群里说法不一样",
        "{greet}明天{subject}听写范围是哪些？",
        "{greet}孩子说{subject}卷子要家长签字，签哪里呀",
        "老师，今天的口算本落学校了，作业能明天补吗",
    ), (
        "Hi teacher, what is the {en_subject} homework for today? {en} forgot to write it down.",
        "Is the spelling test tomorrow? Which words should {en} prepare?",
    )),
    Kind("admin", "P2", 0.45, 0.0, ((9.0, 12.0), (13.0, 17.0), (20.0, 21.5)), (), (
        "{greet}请问校服在哪里买？尺码小了能换吗",
        "{greet}这学期的午餐费什么时候交？交多少钱",
        "{greet}秋游的回执单明天交可以吗",
        "{greet}家长会是几号？需要两个家长都去吗",
        "{greet}课后服务怎么报名？还有名额吗",
        "{greet}孩子的医保什么时候交啊",
    ), ("Hello, how do we pay for the school lunch this term?", "When is the parent-teacher meeting?")),
    Kind("notice", "P2", 0.3, 0.1, ((18.0, 22.0),), ((18.0, 21.5),), (
        "{greet}{child}明天要去医院复查，请假一天{thanks}",
        "{greet}明天上午孩子要参加区里的比赛，请假半天",
        "{greet}后天家里有事，想给{child}请一天假{thanks}",
    ), ("{en} has a doctor's appointment tomorrow morning and will come after lunch.",)),
    Kind("thanks", "P3", 0.5, 0.3, ((12.0, 21.5),), ((9.0, 21.5),), (
        "谢谢老师！辛苦了🌹", "收到，谢谢老师🙏", "好的 麻烦老师了", "老师辛苦了👍", "谢谢{teacher}！",
    ), ("Thank you teacher!", "Thanks a lot 😊")),
    Kind("chatter", "P2", 0.0, 0.4, (), ((9.0, 21.5),), (
        "老师周末好，假期作业有哪些呀",
        "{greet}放假期间学校开放吗？想去操场打球",
        "{greet}节后第一天要带什么？",
        "假期作业的手抄报要多大的纸？",
        "{greet}孩子的{subject}书落学校了，假期能去取吗",
    ), ("Hi, is there any homework over the holiday?",)),
)

HOLIDAY_GREETINGS = ("{holiday}快乐🎉 老师辛苦了", "祝老师们{holiday}快乐！", "{holiday}快乐🥮 谢谢老师们的照顾")
MAKEUP_QUESTIONS = ("{greet}今天调休是上课吧？按周几的课表？", "老师 今天调休上课几点到校呀", "今天补课要穿校服吗？")

EMERGENCIES_IN_SCHOOL = (
    "紧急！{child}打电话说在学校摔倒了头流血了，现在怎么样了？",
    "{child}有严重花生过敏，刚才说吃了同学给的饼干，嘴肿了喘不上气",
    "老师！孩子说在学校厕所被几个高年级的堵着要钱，快去看看！！",
    "孩子刚刚电话里哭着说肚子疼得厉害，在教室趴着，麻烦老师快去看看",
    "URGENT: {en} called me, {en} fell on the playground at school and the arm might be broken. Please check!",
)
EMERGENCIES_AT_NIGHT = (
    "放学一个多小时了{child}还没到家，电话也打不通，学校还有人吗？！",
    "{child}晚上说在学校被同学打了，现在头疼还吐了，怎么办",
    "It is 7pm and {en} has not come home from school, the phone is off. Is anyone still at school?",
)

GREETINGS = ("", "", "老师您好，", "老师好，", "{teacher}好，", "打扰了老师，", "{teacher}，", "您好 ")
THANKS = ("", "，谢谢老师", "，谢谢🙏", "，麻烦老师了", "。谢谢！", " 谢谢老师😊")
TYPOS = (("作业", "做业"), ("请假", "请加"), ("已经", "以经"), ("麻烦", "麻凡"), ("知道", "知到"), ("在家", "再家"))
EMOJI = ("🙏", "😊", "😅", "👍", "🌹")
SICK_EMOJI = "🤒"  # only where a child is ill: on a homework question it would be noise no parent writes
RELATIVES = ("奶奶", "爷爷", "姥姥", "姥爷", "外婆", "他爸", "孩子舅舅", "小姨")
SUBJECTS = (("数学", "math"), ("语文", "Chinese"), ("英语", "English"), ("科学", "science"))
ENGLISH_NAMES = ("Tom", "Lily", "Emma", "Leo", "Mia", "Max", "Amy", "Jack")


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: small means only (a few messages per class and day)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _child(student: Student) -> str:
    given = student.name[1:] or student.name
    return given * 2 if len(given) == 1 else given  # 卢阳 → 阳阳, as parents call them


def _teacher(school: School, school_class: SchoolClass) -> str:
    member = school.staff_member(school_class.homeroom or "") if school_class.homeroom else None
    return f"{member.name[0]}老师" if member else "老师"


def _vary(rng: random.Random, text: str, kind: str) -> str:
    if rng.random() < TYPO_SHARE:
        present = [pair for pair in TYPOS if pair[0] in text]
        if present:
            right, wrong = rng.choice(present)
            text = text.replace(right, wrong, 1)
    if rng.random() < 0.2:
        text = text.replace("，", " ")
    if rng.random() < EMOJI_SHARE and not any(e in text for e in EMOJI):
        text += rng.choice(EMOJI + ((SICK_EMOJI,) if kind == "absence" else ()))
    return text


def _fill(rng: random.Random, template: str, school: School, school_class: SchoolClass, student: Student,
          holiday: str | None) -> str:
    subject, en_subject = rng.choice(SUBJECTS)
    slots = {
        "greet": rng.choice(GREETINGS), "thanks": rng.choice(THANKS), "child": _child(student),
        "en": ENGLISH_NAMES[sum(map(ord, student.id)) % len(ENGLISH_NAMES)],
        "temp": rng.choice(("37.8", "38.2", "38.5", "38.9", "39.1", "39.4")),
        "relative": rng.choice(RELATIVES), "colour": rng.choice(("红色", "蓝色", "黑色", "白色")),
        "subject": subject, "en_subject": en_subject, "n": str(rng.randint(2, 8)), "page": str(rng.randint(12, 60)),
        "holiday": holiday or "节日",
    }
    slots["greet"] = slots["greet"].format(teacher=_teacher(school, school_class))
    slots["teacher"] = _teacher(school, school_class)
    return template.format(**slots)


def moment(rng: random.Random, day: dt.date, hours: tuple[tuple[float, float], ...], zone: dt.tzinfo,
            peak: float | None = None) -> dt.datetime:
    start, end = rng.choice(hours)
    hour = rng.triangular(start, end, peak) if peak is not None and start <= peak <= end else rng.uniform(start, end)
    return dt.datetime.combine(day, dt.time(), zone) + dt.timedelta(seconds=int(hour * 3600))


def author(rng: random.Random, students: list[Student]) -> tuple[Student, str]:
    student = rng.choice(students)
    return student, rng.choice(student.guardians).id


@dataclass
class _Draft:
    at: dt.datetime
    school_class: SchoolClass
    student: Student
    guardian_id: str
    template: str
    kind: str
    intended: str
    holiday: str | None


def _day_drafts(rng: random.Random, school: School, day: SchoolDay, classes: list[SchoolClass],
                pupils: dict[str, list[Student]]) -> list[_Draft]:
    drafts: list[_Draft] = []
    holiday = day.name if day.kind is DayKind.holiday else None
    for kind in KINDS:
        rate = kind.school_rate if day.school_day else kind.off_rate
        hours = kind.school_hours if day.school_day else kind.off_hours
        for school_class in classes:
            for _ in range(poisson(rng, rate)):
                student, guardian = author(rng, pupils[school_class.id])
                templates = kind.zh
                if holiday and kind.name == "thanks":
                    templates = HOLIDAY_GREETINGS
                elif kind.en and rng.random() < ENGLISH_SHARE:
                    templates = kind.en
                peak = ABSENCE_PEAK if kind.name == "absence" else None
                drafts.append(_Draft(moment(rng, day.date, hours, school.zone, peak), school_class, student, guardian,
                                     rng.choice(templates), kind.name, kind.intended, holiday))
    if day.kind is DayKind.makeup:  # a Sunday with classes: parents ask whether it really is one
        for school_class in classes:
            for _ in range(poisson(rng, 0.3)):
                student, guardian = author(rng, pupils[school_class.id])
                drafts.append(_Draft(moment(rng, day.date, ((6.5, 7.5),), school.zone), school_class, student,
                                     guardian, rng.choice(MAKEUP_QUESTIONS), "makeup_question", "P2", None))
    return drafts


def _emergencies(rng: random.Random, school: School, days: list[SchoolDay], classes: list[SchoolClass],
                 pupils: dict[str, list[Student]]) -> list[_Draft]:
    share = len(classes) / FULL_SCHOOL_CLASSES
    school_days = [d for d in days if d.school_day]
    in_school = round(EMERGENCIES_IN_SCHOOL_PER_WEEK * len(school_days) / 5 * share)
    in_school = max(in_school, 1 if school_days else 0)  # even a one-day replay has one to measure
    at_night = round(EMERGENCIES_AT_NIGHT_PER_WEEK * len(days) / 7 * share)
    drafts = []
    for count, pool, templates, hours in ((in_school, school_days, EMERGENCIES_IN_SCHOOL, EMERGENCY_HOURS_IN_SCHOOL),
                                          (at_night, days, EMERGENCIES_AT_NIGHT, EMERGENCY_HOURS_AT_NIGHT)):
        for _ in range(count):
            day = rng.choice(pool)
            school_class = rng.choice(classes)
            student, guardian = author(rng, pupils[school_class.id])
            drafts.append(_Draft(moment(rng, day.date, hours, school.zone), school_class, student, guardian,
                                 rng.choice(templates), "emergency", "P0", None))
    return drafts


def generate(school: School, start: dt.date, days: int, seed: int, classes: int | None = None) -> list[ParentMessage]:
    """The messages of `days` days from `start` for the first `classes` classes (all by default)."""
    rng = random.Random(seed)
    chosen = list(school.classes[:classes] if classes else school.classes)
    pupils = {c.id: [s for s in school.students if s.class_id == c.id and s.guardians] for c in chosen}
    chosen = [c for c in chosen if pupils[c.id]]
    if not chosen:
        raise ValueError("no class with students and guardians to write from")
    calendar = SchoolCalendar(school)
    window = [calendar.day(start + dt.timedelta(days=n)) for n in range(days)]
    drafts = [d for day in window for d in _day_drafts(rng, school, day, chosen, pupils)]
    drafts += _emergencies(rng, school, window, chosen, pupils)
    drafts.sort(key=lambda d: (d.at, d.school_class.id, d.student.id, d.kind))
    messages = []
    for index, draft in enumerate(drafts):
        text = _fill(rng, draft.template, school, draft.school_class, draft.student, draft.holiday)
        if draft.kind != "emergency":
            text = _vary(rng, text, draft.kind)
        messages.append(ParentMessage(index, draft.at, draft.school_class.id, draft.student.id, draft.guardian_id,
                                      text, draft.kind, draft.intended))
    return messages
