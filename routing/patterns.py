"""Signals that are a shape of sentence rather than a phrase: 被…打, 我…晚, 晚十分钟到, 提前…接.

Each pattern yields a hit of a lexicon kind, so the rules treat it like a phrase.
"""

from __future__ import annotations

import re

from routing.lexicon import Hit

_GAP = r"[^，,。.!?！？;；\n]"
# parts of the body (not 手机, 扶手, 桌腿, 牙刷: things that break)
_BODY_ZH = (
    "(?<![把扶拉])手(?![机表套工架柄绢])|(?<![桌椅凳床])(?<!桌子)(?<!椅子)(?<!凳子)(?:脚|腿)(?![架手])|胳膊|胳臂|鼻梁|鼻子|骨头|锁骨|肋骨|"
    "门牙|牙齿|牙(?![刷膏签])"
)
_BODY_EN = (
    r"(?<!chair )(?<!table )(?<!desk )(?<!stool )"
    r"(?:arm|wrist|leg|ankle|finger|toe|nose|collarbone|collar bone|bone|elbow|foot|hand|tooth|teeth|shoulder)"
)
_NOT_PARENT = r"(?!(?:he|she|they|he'll|she'll|they'll|his|her|my|our|the|son|daughter|kids?|child)\b)"
# (texts of which the pattern needs one, or () for a digit; pattern; kind of the hit; term shown
#  in reasons; kinds of phrases inside it that it overrules; kinds it overrules anywhere in the message)
_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    # A part of the body broken is an injury, not a broken thing: 手臂好像断了, his wrist might be broken.
    (
        ("断", "折", "裂"),
        re.compile(rf"(?:{_BODY_ZH}){_GAP}{{0,4}}?(?:断了|断掉|折了|裂了|骨折)"),
        "medical_acute",
        "a broken bone",
        ("hazard",),
        (),
    ),
    (
        ("broke", "fractur", "snapped"),
        re.compile(
            rf"\b(?:{_BODY_EN})s?\b(?: [a-z']+){{0,3}}? (?:broken|fractured|snapped)\b"
            rf"|\b(?:broke|broken|fractured|snapped) (?:his|her|their|a|the) (?:{_BODY_EN})s?\b"
        ),
        "medical_acute",
        "a broken bone",
        ("hazard",),
        (),
    ),
    # The parent will be late (English): I'll be 20 mins late, we might be a bit late for pickup.
    (
        ("late",),
        re.compile(
            rf"\b(?:i'll|i will|i'm|i am|i'd|i may|i might|we'll|we will|we're|we are|we may|we might)\b"
            rf"(?: {_NOT_PARENT}[a-z0-9']+){{0,6}}? late\b"
        ),
        "pickup",
        "parent late",
        ("attendance", "lateness"),
        ("lateness",),
    ),
    # An unknown adult doing something to or around the child, in any words: 有个戴帽子的男人一路跟着我女儿,
    # a man in a black car pulled up and asked her to get in.
    (
        ("跟", "尾随", "盯", "拍", "搭讪", "拉", "拽", "抱", "带走", "上车"),
        re.compile(
            rf"(?:陌生|不认识的|男人|男子|男的|女人|女的|老头|(?<![她他娃的])(?:大叔|叔叔|大爷|阿叔))"
            rf"{_GAP}{{0,10}}?(?:跟着|跟踪|尾随|跟到|跟了|盯着|偷拍|拍她|拍他|拍小孩|搭讪|拉她|拉他|拽|抱走|拉走|带走|上车)"
        ),
        "safety_threat",
        "a stranger near the child",
        (),
        (),
    ),
    (
        ("man", "men", "guy", "bloke", "woman", "person", "stranger", "adult", "teen"),
        re.compile(
            r"\b(?:a|an|some|this|that|the same|one|two|random|strange|weird|creepy|older|unknown)\s+"
            r"(?:[a-z']+\s+){0,2}?(?:man|men|guy|guys|bloke|blokes|woman|women|person|stranger|strangers"
            r"|adult|adults|teenager|teenagers|teens)\b[^.!?]{0,60}?"
            r"\b(?:follow(?:ed|ing|s)? (?:her|him|them|my|the kids)|approach(?:ed|ing)? (?:her|him|them|my|the kids)"
            r"|grabb?(?:ed|ing|s)? (?:her|him|them|my|the kids|at)|touch(?:ed|es|ing)? (?:her|him|them|my|the kids)"
            r"|(?:photograph|film)(?:ed|ing)? (?:her|him|them|the kids|kids|children)|star(?:ed|ing) at|lur(?:e|ed|ing)"
            r"|watching (?:her|him|them|the kids)|waiting for (?:her|him)|asked (?:her|him|them) to"
            r"|asking (?:her|him|them)|offered (?:her|him|them)|pulled up|get in(?! touch)|got in(?! touch)"
            r"|into (?:his|a|the|their) (?:car|van)|talk(?:ed|ing)? to (?:her|him|them|my|the kids))\b"
        ),
        "safety_threat",
        "a stranger near the child",
        (),
        (),
    ),
    # Life has no point (活着没意义, 活着有什么用): a child who may hurt themself.
    (
        ("活着",),
        re.compile(
            rf"活着{_GAP}{{0,4}}?(?:没意思|没意义|没有意义|没什么意义|没劲|好累|太累|很累|有什么意思|有啥意思|有什么用|有啥用|干嘛|干什么)"
        ),
        "self_harm",
        "活着…没意义",
        (),
        (),
    ),
    # Others did it to the child, said with 把: 把我家孩子围起来打, 几个人把他按在地上.
    (
        ("把", "将"),
        re.compile(
            rf"(?:把|将)(?:我家孩子|我家娃|我家小子|我孩子|我儿子|我女儿|我闺女|孩子|他|她|娃){_GAP}{{0,8}}?"
            rf"(?:打(?!扮|扫|电话|针|开|卡|印|包|理|疫|预防|点滴|车|的|球|游戏|字|招呼)|踢|揍|推倒|推下|按在|锁|关在|关进|围起来|围住|堵|掐|绊倒|撞倒|欺负)"
        ),
        "safety_harm",
        "把…打",
        (),
        (),
    ),
    # Someone online or unknown wants to meet the child or asks for pictures: 有人在网上让她发照片,
    # 约她今天放学见面, a man on WhatsApp asked her to send photos.
    (
        ("约", "照片", "自拍", "视频"),
        re.compile(
            rf"约(?:她|他|孩子|我女儿|我儿子|我闺女){_GAP}{{0,8}}?见面"
            rf"|(?:有人|陌生人|网友|男的|女的|叔叔|大人){_GAP}{{0,12}}?[让叫要](?:她|他|孩子){_GAP}{{0,4}}?"
            rf"[发拍传](?:照片|自拍|视频|裸)"
        ),
        "safety_threat",
        "a stranger contacting the child",
        (),
        (),
    ),
    (
        ("photo", "picture", "pics", "selfie", "video"),
        re.compile(
            r"\b(?:an adult|a man|a woman|a stranger|some guy|a guy|an older|a grown|a random)\b[^.!?]{0,80}?"
            r"\b(?:send|sent|sending)\b[^.!?]{0,20}?\b(?:photos?|pictures?|pics|selfies?|videos?)\b"
        ),
        "safety_threat",
        "a stranger contacting the child",
        (),
        (),
    ),
    # Someone did something to the child: 被几个人按在地上踢, 被高年级的围在厕所里打 (遭打, 俾人打).
    (
        ("被", "遭", "俾", "畀"),
        re.compile(
            rf"(?:被|遭到|遭|俾|畀)(?!球|篮球|足球|排球|门|车|东西|石头|树枝){_GAP}{{0,12}}?(打(?!扰|针|电话|疫苗|开)|踢|揍|推(?!荐|迟|广)|欺负|锁|关(?![心注照爱])|围|按(?!时|照)|掐|绊|霸凌|勒索|抢|摸(?!底|索|清|透))"
        ),
        "safety_harm",
        "被…打",
        (),
        (),
    ),
    # The parent will be late: a pickup matter (我今天会晚二十分钟, 我可能要晚到).
    (
        ("我",),
        re.compile(
            rf"我(?:们)?(?![家孩儿女娃的]){_GAP}{{0,8}}?"
            rf"(晚(?!上|饭){_GAP}{{0,6}}?(到|接|来)|晚(?!上|饭)|迟到|才能到|才到|到不了|赶不到|来不及|去不了|接不了|late)"
        ),
        "pickup",
        "parent late",
        ("attendance", "lateness"),
        ("lateness",),
    ),
    # Asking for leave in any words: 请一周的假, 请两天病假.
    (("假",), re.compile(rf"请{_GAP}{{0,4}}?假"), "attendance", "请…假", (), ()),
    # The child will be late: 晚十五分钟到, 晚半小时到.
    (
        ("晚",),
        re.compile(r"晚[一二三四五六七八九十两半几\d]+(分钟|分鐘|个小时|小时|个钟)?(左右)?(到|来)"),
        "lateness",
        "晚…到",
        (),
        (),
    ),
    # Leaving early is an absence: 提前一小时接, 两点前…接.
    (
        ("接",),
        re.compile(rf"(提前{_GAP}{{0,6}}?接|点前{_GAP}{{0,6}}?接)"),
        "attendance",
        "提前…接",
        ("pickup",),
        (),
    ),
    # A date is a later day (unless the message also says today): 12 to 16 may, 5月12日.
    (
        (),
        re.compile(
            r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b"
            r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\s+\d{1,2}(?:st|nd|rd|th)?\b"
            r"|\d{1,2}月\d{1,2}[日号]?"
            r"|\b(?:from|on|until|till|to) the \d{1,2}(?:st|nd|rd|th)\b"
            r"|(?<![\d.])\d{1,2}号(?![楼线门床位桌车窗柜口房室馆])"
        ),
        "later",
        "a date",
        (),
        (),
    ),
)


def with_patterns(text: str, hits: list[Hit]) -> list[Hit]:
    """The phrase hits plus the pattern hits, minus the phrases a pattern overrules (晚到 in 我…晚到)."""
    found: list[Hit] = []
    overruled: list[tuple[int, int, tuple[str, ...]]] = []
    digits = any(c in text for c in "0123456789")
    for needed, pattern, kind, term, overrules, everywhere in _PATTERNS:
        if needed:
            for word in needed:  # a plain loop: this runs for every message
                if word in text:
                    break
            else:
                continue
        elif not digits:
            continue
        for match in pattern.finditer(text):
            found.append(Hit(match.start(), match.end(), kind, term))
            if overrules:
                overruled.append((match.start(), match.end(), overrules))
            if everywhere:
                overruled.append((0, len(text), everywhere))  # 我会晚点到…堵车: the parent's delay
    if not found:
        return hits
    return sorted(
        hit
        for hit in hits + found
        if not any(s <= hit.start and hit.end <= e and hit.kind in kinds for s, e, kinds in overruled)
    )
