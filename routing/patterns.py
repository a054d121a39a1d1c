"""Signals that are a shape of sentence rather than a phrase: 被…打, 我…晚, 晚十分钟到, 提前…接.

Each pattern yields a hit of a lexicon kind, so the rules treat it like a phrase.
"""

from __future__ import annotations

import re

from routing.lexicon import Hit

_GAP = r"[^，,。.!?！？;；\n]"
# (a character the pattern needs, pattern, kind of the hit, term shown in reasons,
#  kinds of phrases inside it that it overrules)
_PATTERNS: tuple[tuple[str, re.Pattern[str], str, str, tuple[str, ...]], ...] = (
    # Someone did something to the child: 被几个人按在地上踢, 被高年级的围在厕所里打.
    (
        "被",
        re.compile(
            rf"被(?!球|篮球|足球|排球|门|车|东西|石头|树枝){_GAP}{{0,12}}?(打(?!扰|针|电话|疫苗|开)|踢|揍|推(?!荐|迟|广)|欺负|锁|关(?![心注照爱])|围|按(?!时|照)|掐|绊|霸凌|勒索|抢)"
        ),
        "safety_harm",
        "被…打",
        (),
    ),
    # The parent will be late: a pickup matter (我今天会晚二十分钟, 我可能要晚到).
    (
        "我",
        re.compile(
            rf"我(?:们)?(?![家孩儿女娃的]){_GAP}{{0,8}}?"
            rf"(晚(?!上|饭){_GAP}{{0,6}}?(到|接|来)|晚(?!上|饭)|迟到|才能到|才到|到不了|赶不到|来不及|去不了|接不了|late)"
        ),
        "pickup",
        "parent late",
        ("attendance", "lateness"),
    ),
    # Asking for leave in any words: 请一周的假, 请两天病假.
    ("假", re.compile(rf"请{_GAP}{{0,4}}?假"), "attendance", "请…假", ()),
    # The child will be late: 晚十五分钟到, 晚半小时到.
    (
        "晚",
        re.compile(r"晚[一二三四五六七八九十两半几\d]+(分钟|分鐘|个小时|小时|个钟)?(左右)?(到|来)"),
        "lateness",
        "晚…到",
        (),
    ),
    # Leaving early is an absence: 提前一小时接, 两点前…接.
    ("接", re.compile(rf"(提前{_GAP}{{0,6}}?接|点前{_GAP}{{0,6}}?接)"), "attendance", "提前…接", ("pickup",)),
    # A date is a later day (unless the message also says today): 12 to 16 may, 5月12日.
    (
        "",
        re.compile(
            r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b"
            r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\s+\d{1,2}(?:st|nd|rd|th)?\b"
            r"|\d{1,2}月\d{1,2}[日号]?"
        ),
        "later",
        "a date",
        (),
    ),
)


def with_patterns(text: str, hits: list[Hit]) -> list[Hit]:
    """The phrase hits plus the pattern hits, minus the phrases a pattern overrules (晚到 in 我…晚到)."""
    found: list[Hit] = []
    overruled: list[tuple[int, int, tuple[str, ...]]] = []
    digits = any(c in text for c in "0123456789")
    for needed, pattern, kind, term, overrules in _PATTERNS:
        if not (needed in text if needed else digits):
            continue
        for match in pattern.finditer(text):
            found.append(Hit(match.start(), match.end(), kind, term))
            if overrules:
                overruled.append((match.start(), match.end(), overrules))
    if not found:
        return hits
    return sorted(
        hit
        for hit in hits + found
        if not any(s <= hit.start and hit.end <= e and hit.kind in kinds for s, e, kinds in overruled)
    )
