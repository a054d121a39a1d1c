"""The labels of the public contract (see DESIGN.md)."""

from enum import StrEnum


class Urgency(StrEnum):
    P0 = "P0"  # emergency: health or safety at risk now
    P1 = "P1"  # today: absence, pickup change, contagious illness notice
    P2 = "P2"  # routine: homework, fees, policy questions
    P3 = "P3"  # no action: thanks, greetings, spam

    @property
    def rank(self) -> int:
        """0 is the most urgent; lets callers compare urgencies."""
        return int(self.value[1])


class Category(StrEnum):
    medical = "medical"
    safety = "safety"
    attendance = "attendance"
    pickup = "pickup"
    academic = "academic"
    admin = "admin"
    feedback = "feedback"
    other = "other"


# What a parent or a staff member reads for each category (SMS and IM texts carry
# these words instead of the diagnosis).
CATEGORY_WORDS: dict[Category, str] = {
    Category.medical: "身体不适",
    Category.safety: "安全事项",
    Category.attendance: "请假考勤",
    Category.pickup: "接送变更",
    Category.academic: "学业问题",
    Category.admin: "事务咨询",
    Category.feedback: "意见反馈",
    Category.other: "其他事项",
}

URGENCY_WORDS: dict[Urgency, str] = {
    Urgency.P0: "紧急",
    Urgency.P1: "今日处理",
    Urgency.P2: "常规",
    Urgency.P3: "无需处理",
}
