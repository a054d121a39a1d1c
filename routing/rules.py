"""The triage rules: from a message's evidence to candidate (urgency, category, reason).

One function per family of signals (medical, safety, routine requests). Each
candidate carries an order: among equally urgent candidates the lowest order
wins (a threat before an injury, a complaint before the homework it mentions).
"""

from __future__ import annotations

from typing import NamedTuple

from routing.evidence import MEDICAL, Evidence, Place, Status
from routing.labels import Category, Urgency
from routing.lexicon import Hit, Lexicon
from routing.normalize import HIGH_FEVER_C

P0, P1, P2, P3 = Urgency.P0, Urgency.P1, Urgency.P2, Urgency.P3

SAFETY = ("self_harm", "safety_threat", "safety_harm", "safety_concern", "safety_notice")
_HANDOVER_WORDS = (
    "接",
    "带走",
    "领走",
    "交给",
    "放人",
    "放走",
    "放她",
    "放他",
    "放孩子",
    "pick",
    "collect",
    "release",
    "take",
    "hand over",
    "hand him",
    "hand her",
    "go with",
    "leave with",
)
# the handover word comes this close after the cue, in its clause (别让他爸爸接) or its sentence
# (don't let anyone but me or my wife collect him)
_HANDOVER_REACH = 12
_HANDOVER_REACH_EN = 40
# conditional.txt words that, said of a threat, make it likely rather than hypothetical:
# 他今天可能会来学校抢孩子, he might try to take her
_FEARED = frozenset(("可能会", "might", "担心会", "怕会"))
_DEFAULT_URGENCY = {Category.medical: P1, Category.safety: P1, Category.attendance: P1, Category.pickup: P1}
_VICTIM_WORDS = ("我", "他", "她", "孩子", "娃", "儿子", "女儿", "him", "her", "my ")
_SHORT = 8  # a greeting or "ok" with more than this much else to say is not just a greeting
# at_school phrases that say the parent sent the child (a symptom before them was known at home)
_SENT = ("去学校了", "已经去学校", "送到学校", "送学校", "正常上学", "照常上学", "去上学了", "已经上学")


class Candidate(NamedTuple):
    urgency: Urgency
    order: int  # among equally urgent candidates, the lower order wins
    category: Category
    reason: str
    cautious: bool = False  # P0 by caution (a weak signal, or a symptom whose place is unclear), not a phrase


class Context:
    """One message under judgement: its evidence, the form's hint, and notes for the reasons."""

    def __init__(self, evidence: Evidence, hinted: Category | None, lexicon: Lexicon | None = None) -> None:
        self.evidence = evidence
        self.hinted = hinted
        self.lexicon = lexicon
        self.notes: list[str] = []
        self.inactive: list[Hit] = []
        self._place: tuple[Place | None, Hit | None] | None = None

    def place(self) -> tuple[Place | None, Hit | None]:
        if self._place is None:
            self._place = self.evidence.place()
            if self._place[0] is None and self.hinted is Category.attendance:
                self._place = (Place.away, None)
        return self._place

    def ruled_out(self, hit: Hit, status: Status, cue: Hit | None) -> None:
        self.inactive.append(hit)
        self.notes.append(f"{hit.term}: {status.value} ({cue.term if cue else '?'}) → not counted")


def _term(hit: Hit) -> str:
    if hit.written and hit.written[0].isdigit():
        return f"{hit.term} ({hit.written})"  # a temperature reading
    if hit.written:
        return f"{hit.term} (written {hit.written})"
    return hit.term


def _cue(cue: Hit | None) -> str:
    return f" ({cue.term})" if cue else ""


# --- medical


def medical(ctx: Context) -> list[Candidate]:
    ev, out = ctx.evidence, []
    upset = ev.has(*SAFETY)
    for hit in ev.of_any(MEDICAL):
        kind = hit.kind
        if kind == "medical_unwell" and upset:
            ctx.notes.append(f"{hit.term} next to a safety signal: read as upset, not ill")
            continue
        if kind == "medical_acute" and hit.term == "过敏" and _allergy_condition(ev, hit):
            kind = "medical_condition"
        status, cue = ev.status(hit)
        if status is Status.other_child:
            out.append(
                Candidate(P2, 4, Category.medical, f"medical: {_term(hit)} of another child{_cue(cue)} → P2")
            )
        elif status is Status.hypothetical:
            out.append(_medical_question(ev, hit, cue))
        elif status is not Status.live:
            ctx.ruled_out(hit, status, cue)
        else:
            out.append(_medical_live(ctx, hit, kind))
    if ctx.inactive and (policy := ev.rule_question()):
        out.append(Candidate(P2, 0, Category.admin, f"health policy question ({policy.term}) → P2 admin"))
    elif ctx.inactive and (later := ev.later()) and not ev.has("returning"):
        reason = f"medical: {ctx.inactive[0].term} is over; instructions for later ({later.term}) → P2"
        out.append(Candidate(P2, 7, Category.medical, reason))
    return out


def _allergy_condition(ev: Evidence, hit: Hit) -> bool:
    """对花生过敏 is a standing condition, 过敏了 an event."""
    start = ev.text.rfind("对", max(0, hit.start - 8), hit.start)
    return (
        start >= 0 and ev.same_clause(start, hit.start) and ev.text[hit.end : hit.end + 1] not in ("了", "反")
    )


def _medical_question(ev: Evidence, hit: Hit, cue: Hit | None) -> Candidate:
    if ev.rule_question():
        return Candidate(P2, 0, Category.admin, f"health policy question: {_term(hit)}{_cue(cue)} → P2 admin")
    if ev.today() and not ev.later():
        return Candidate(P1, 1, Category.medical, f"medical: watch today for {_term(hit)}{_cue(cue)} → P1")
    return Candidate(P2, 4, Category.medical, f"medical: {_term(hit)}, hypothetical{_cue(cue)} → P2")


def _medical_live(ctx: Context, hit: Hit, kind: str) -> Candidate:
    ev, term = ctx.evidence, _term(hit)
    if kind == "medical_condition":
        return Candidate(P2, 1, Category.medical, f"health information: {term} → P2")
    place, cue = ctx.place()
    if place is Place.away and kind == "contagious" and (measure := _first(ev, "class_measures")):
        reason = f"contagious illness: {term}, child at home, class measures asked ({measure.term}) → P1"
        return Candidate(P1, 1, Category.medical, reason)
    if place is Place.away:
        return Candidate(
            P1, 2, Category.attendance, f"medical: {term}, child away from school{_cue(cue)} → P1 attendance"
        )
    if kind == "contagious":
        return Candidate(P1, 1, Category.medical, f"contagious illness: {term} → P1")
    if kind == "medical_care":
        if ev.later():
            return Candidate(P2, 4, Category.medical, f"care from a later day: {term} → P2")
        return Candidate(P1, 1, Category.medical, f"care today: {term} → P1")
    if kind == "medical_mild":
        if (calm := ev.resolution(hit, "reassured")) and not ev.has("urgent", "current"):
            return Candidate(
                P2, 4, Category.medical, f"medical: {term}, minor, nothing to do ({calm.term}) → P2"
            )
        if later := ev.later():
            return Candidate(
                P2, 4, Category.medical, f"medical: {term}, minor, for a later day ({later.term}) → P2"
            )
        if place is Place.school and (urgent := ev.of("urgent")):
            return Candidate(P0, 1, Category.medical, f"medical: {term} at school with {urgent[0].term} → P0")
        return Candidate(P1, 1, Category.medical, f"medical: {term}, minor → P1")
    if place is Place.school and _sent_knowing(ev, hit, cue):
        return Candidate(P1, 1, Category.medical, f"medical: {term}, sent to school with it{_cue(cue)} → P1")
    if place is Place.school:
        return Candidate(P0, 1, Category.medical, f"medical: {term} at school now{_cue(cue)} → P0")
    return Candidate(P0, 1, Category.medical, f"medical: {term}, place unclear → higher urgency P0", cautious=True)


def _sent_knowing(ev: Evidence, hit: Hit, cue: Hit | None) -> bool:
    """有点低烧，我让她去学校了: a symptom known at home before the child was sent is a watch
    request, unless something says it is worse now (现在, 急, the school called, a high reading)."""
    return (
        cue is not None
        and cue.term in _SENT
        and hit.end <= cue.start
        and not ev.has("current", "urgent", "school_call")
        and not any(t.celsius >= HIGH_FEVER_C for t in ev.temperatures)
    )


# --- safety


def safety(ctx: Context) -> list[Candidate]:
    ev, out = ctx.evidence, []
    for hit in ev.of("self_harm"):
        if ev.negation(hit):
            continue
        if cue := ev.other_child(hit):
            out.append(
                Candidate(
                    P1, 0, Category.safety, f"self-harm words about another child: {hit.term}{_cue(cue)} → P1"
                )
            )
        else:
            out.append(Candidate(P0, 0, Category.safety, f"safety: {hit.term} (self-harm) → P0"))
    for hit in ev.of("safety_threat"):
        out += _threat(ctx, hit)
    out += _do_not_release(ev)
    for hit in ev.of("safety_notice"):
        out.append(Candidate(P1, 0, Category.safety, f"safety: {hit.term} → P1"))
    for hit in ev.of("safety_harm"):
        out += _harm(ev, hit)
    for hit in ev.of("safety_concern"):
        if not ev.negation(hit):
            if cue := ev.today():
                out.append(
                    Candidate(
                        P1,
                        0,
                        Category.safety,
                        f"safety concern: {hit.term}, raised for today{_cue(cue)} → P1",
                    )
                )
            else:
                out.append(Candidate(P2, 2, Category.safety, f"safety concern: {hit.term} → P2"))
    for hit in ev.of("hazard"):
        out += _hazard(ev, hit)
    return out


def _threat(ctx: Context, hit: Hit) -> list[Candidate]:
    ev = ctx.evidence
    if ev.negation(hit):
        return []
    if cue := ev.other_child(hit, rumour_only=True):
        return [Candidate(P2, 4, Category.safety, f"safety rumour: {hit.term}{_cue(cue)} → P2")]
    # 要不要跟他走 is the stranger's question, and 可能会来抢 a fear: only an "if" or a rules question
    # makes a threat hypothetical
    if (cue := ev.hypothetical(hit)) and cue.term not in _FEARED and cue.kind != "permission_question":
        return [Candidate(P2, 4, Category.safety, f"safety question: {hit.term}{_cue(cue)} → P2")]
    if cue := ev.resolution(hit, "found"):
        ctx.ruled_out(hit, Status.resolved, cue)
        return []
    if cue := ev.earlier(hit):
        return [Candidate(P1, 0, Category.safety, f"safety: {hit.term} on an earlier day{_cue(cue)} → P1")]
    return [Candidate(P0, 0, Category.safety, f"safety: {_term(hit)} → P0")]


def _do_not_release(ev: Evidence) -> list[Candidate]:
    """别让 … 接, do not release …: the school must not hand the child over."""
    for cue in ev.of("forbid_handover"):
        if ev.negation(cue) or ev.past(cue) or ev.resolution(cue):
            continue
        english = cue.term.isascii()
        after = ev.text[cue.end : cue.end + (_HANDOVER_REACH_EN if english else _HANDOVER_REACH)]
        for stop in "。！？!?;；\n" if english else "。！？!?;；\n，,":
            after = after.split(stop, 1)[0]
        said = cue.term + after  # 不要放 + 人: the handover word may straddle the cue
        if any(word in said for word in _HANDOVER_WORDS):
            return [
                Candidate(P0, 0, Category.safety, f"safety: do not release the child ({cue.term} …) → P0")
            ]
    return []


def _harm(ev: Evidence, hit: Hit) -> list[Candidate]:
    status, cue = ev.status(hit, rumour_only=True)
    if status in (Status.negated, Status.resolved):
        return []
    if status is Status.past:
        return [Candidate(P2, 8, Category.safety, f"safety: {hit.term}, in the past{_cue(cue)} → P2")]
    if status is not Status.live:
        return [Candidate(P2, 3, Category.safety, f"safety: {hit.term}, {status.value}{_cue(cue)} → P2")]
    if cue := ev.earlier(hit):
        return [Candidate(P1, 0, Category.safety, f"safety: {hit.term}, told afterwards{_cue(cue)} → P1")]
    if (habit := _first(ev, "habitual")) and not ev.has("current"):
        if hurt := _injured(ev):
            reason = f"safety: {hit.term}, keeps happening ({habit.term}) and has hurt ({hurt.term}) → P0"
            return [Candidate(P0, 0, Category.safety, reason)]
        if today := ev.today():
            return [
                Candidate(
                    P1,
                    0,
                    Category.safety,
                    f"safety: {hit.term}, keeps happening ({habit.term}), today{_cue(today)} → P1",
                )
            ]
        return [Candidate(P2, 2, Category.safety, f"safety: {hit.term}, keeps happening ({habit.term}) → P2")]
    if (other := ev.other_child(hit)) and not _victim_named(ev.text[other.end : hit.end]):
        return [Candidate(P2, 4, Category.safety, f"safety: {hit.term} among others{_cue(other)} → P2")]
    return [Candidate(P0, 0, Category.safety, f"safety: {hit.term}, now or time unclear → P0")]


def _injured(ev: Evidence) -> Hit | None:
    """Violence that keeps happening and has left marks (淤青, cuts, marks on his neck) is not just a
    worry: the child goes back among the same children today."""
    for hit in ev.of("medical_acute"):
        if ev.status(hit, rumour_only=True)[0] is Status.live:
            return hit
    return None


def _hurt_now(ev: Evidence, hazard: Hit) -> Hit | None:
    """水管爆了，有小朋友被烫伤了: a hazard that is hurting someone (any child) is happening now."""
    away = ev.place()[0] is Place.away
    for hit in ev.of("medical_acute"):
        if hit.start < hazard.start or not ev.same_sentence(hazard.start, hit.start):
            continue
        if away and not ev.other_child(hit):
            continue  # 栏杆松了，孩子发烧在家: the own child's illness at home is not the hazard's doing
        if not (
            ev.negation(hit) or ev.resolution(hit) or ev.past(hit) or ev.earlier(hit) or ev.hypothetical(hit)
        ):
            return hit
    return None


def _victim_named(words: str) -> bool:
    """有几个同学把他锁在…, 有人打了我家孩子: others did it, to the parent's child."""
    return any(word in words for word in _VICTIM_WORDS)


def _hazard(ev: Evidence, hit: Hit) -> list[Candidate]:
    if ev.negation(hit):
        return []
    if now := (ev.of("current") or ev.of("urgent")):
        return [Candidate(P0, 0, Category.safety, f"safety hazard: {hit.term}, {now[0].term} → P0")]
    if hurt := _hurt_now(ev, hit):
        return [
            Candidate(P0, 2, Category.safety, f"safety hazard: {hit.term}, someone hurt ({hurt.term}) → P0")
        ]
    if cue := ev.today():
        return [Candidate(P1, 0, Category.safety, f"safety hazard: {hit.term}, today{_cue(cue)} → P1")]
    return [Candidate(P2, 1, Category.safety, f"safety hazard: {hit.term} → P2")]


# --- routine requests and messages that need nothing

_TOPICS: tuple[tuple[str, int, Category], ...] = (
    ("canteen", 2, Category.admin),
    ("feedback", 3, Category.feedback),
    ("academic", 5, Category.academic),
    ("admin", 7, Category.admin),
)
_NO_ACTION: tuple[tuple[str, int, Category, bool], ...] = (
    ("thanks", 0, Category.feedback, False),
    ("ack", 1, Category.other, True),
    ("greeting", 2, Category.other, True),
    ("chatter", 2, Category.other, False),
    ("spam", 2, Category.other, False),
)


def routine(ctx: Context) -> list[Candidate]:
    ev = ctx.evidence
    out = _today_or_later(ev, ("attendance", "lateness"), 2, Category.attendance)
    out += _today_or_later(ev, ("pickup",), 3, Category.pickup)
    if returning := ev.of("returning"):
        out.append(
            Candidate(P2, 5, Category.attendance, f"attendance: {returning[0].term}, back to school → P2")
        )
    thanked = ev.has("thanks") and not ev.has("question")
    for kind, order, category in _TOPICS:
        if hits := ev.of(kind):
            if thanked and kind != "feedback":
                continue  # thanks that mention a lesson, a trip or lunch: nothing to do
            forgot = ev.of("forgot")
            if forgot and ev.today() and kind != "feedback":
                reason = f"{category.value}: {hits[0].term}, {forgot[0].term} today → P1"
                out.append(Candidate(P1, 4, category, reason))
            else:
                out.append(Candidate(P2, order, category, f"{category.value}: {hits[0].term} → P2"))
    if (policy := ev.rule_question()) and ev.has("admin"):
        out.append(
            Candidate(P2, 1, Category.admin, f"admin: a question about rules and papers ({policy.term}) → P2")
        )
    if ev.has("forgot") and ev.today() and not any(c.urgency is P1 for c in out):
        out.append(Candidate(P1, 4, Category.admin, f"admin: {ev.of('forgot')[0].term} today → P1"))
    short: bool | None = None
    for kind, order, category, needs_short in _NO_ACTION:
        if (hits := ev.of(kind)) and needs_short and short is None:
            short = _leftover(ev) <= _SHORT
        if hits and (short or not needs_short):
            out.append(Candidate(P3, order, category, f"no action: {hits[0].term} → P3"))
    return out


def _today_or_later(ev: Evidence, kinds: tuple[str, ...], order: int, category: Category) -> list[Candidate]:
    """An absence or a pickup change today is P1; for a later day, or asked about, it is routine."""
    for hit in ev.of_any(kinds):
        if category is Category.attendance and (ev.negation(hit) or ev.past(hit)):
            continue  # 没请假; 上周请了病假 (an absence that is over asks nothing today)
        if category is Category.pickup and ev.past(hit) and not ev.today():
            continue  # teased on the bus last term: a pickup word told about the past asks nothing
        if cue := ev.hypothetical(hit):
            return [Candidate(P2, 6, category, f"{category.value} question: {hit.term}{_cue(cue)} → P2")]
        asked = _first(ev, "process_question") or ev.rule_question() or _first(ev, "feedback")
        if not ev.today() and (why := ev.later() or asked):
            return [
                Candidate(P2, 4, category, f"{category.value}: {_term(hit)}, not for today{_cue(why)} → P2")
            ]
        return [Candidate(P1, order, category, f"{category.value}: {_term(hit)} → P1")]
    return []


def _first(ev: Evidence, kind: str) -> Hit | None:
    hits = ev.of(kind)
    return hits[0] if hits else None


def _leftover(ev: Evidence) -> float:
    """How much of the message no phrase explains (CJK characters, English words count as 4)."""
    covered = bytearray(len(ev.text))
    for hits in ev.by_kind.values():
        for hit in hits:
            covered[hit.start : hit.end] = b"\x01" * (hit.end - hit.start)
    cjk = letters = 0
    for char, done in zip(ev.text, covered, strict=True):
        if not done:
            if "\u3400" <= char <= "\u9fff":
                cjk += 1
            elif char.isascii() and char.isalpha():
                letters += 1
    return cjk + letters / 4


# --- the safety net: a health or safety signal in words no list knows yet

# weight of each weak list; the net fires from _NET_MIN with a cue that the child is in it now
_NET_WEIGHT = {
    "weak_body": 1,
    "weak_symptom": 1,
    "weak_distress": 2,
    "weak_accident": 2,
    "weak_danger": 2,
    "weak_person": 1,
    "concern": 2,
}
# the net needs something physical: a body, distress, an accident, a weapon or violence
_NET_PHYSICAL = frozenset(("weak_body", "weak_distress", "weak_accident", "weak_danger"))
_NET_MIN = 3
_NET_KIND = {"safety_concern": "concern"}
# someone else doing it (有人拿刀) is the danger, not another child's trouble: only hearsay rules these out
_NET_ACTORS = frozenset(("weak_danger", "weak_person", "safety_concern"))
# a known signal that decides the message keeps the net quiet; a worry (safety_concern, a standing
# condition) does not decide it, and a worry counts as danger
_NET_QUIET = (
    *(kind for kind in MEDICAL if kind != "medical_condition"),
    *(kind for kind in SAFETY if kind != "safety_concern"),
    "hazard",
    "thanks",
    "spam",
    "returning",
)
_NET_NOW = ("urgent", "current", "school_call", "weak_now")


def net(ctx: Context) -> list[Candidate]:
    """When a health or safety signal is present but the rest is unclear, choose the higher urgency:
    parts of the body, distress, accidents and danger (weak_*.txt), said of the child now or at
    school, in a message where no known medical or safety phrase fired, make it an emergency."""
    ev = ctx.evidence
    if ctx.lexicon is None or ev.has(*_NET_QUIET):
        return []
    weak = ctx.lexicon.weak_scan(ev.text)
    if not weak or ev.later() or ev.rule_question():
        return []
    place, where = ctx.place()
    if place is Place.away:
        return []
    known = ev.of("safety_concern")
    live = [
        hit
        for hit in known + [h for h in weak if not any(k.start < h.end and h.start < k.end for k in known)]
        if _NET_KIND.get(hit.kind, hit.kind) in _NET_WEIGHT
        and ev.status(hit, rumour_only=hit.kind in _NET_ACTORS)[0] is Status.live
        and not ev.earlier(hit)
    ]
    kinds = {_NET_KIND.get(hit.kind, hit.kind) for hit in live}
    if kinds.isdisjoint(_NET_PHYSICAL) or sum(_NET_WEIGHT[kind] for kind in kinds) < _NET_MIN:
        return []
    now = [hit for kind in _NET_NOW[:-1] for hit in ev.of(kind)] + [h for h in weak if h.kind == _NET_NOW[-1]]
    cue = where if place is Place.school else (now[0] if now else None)
    if cue is None:
        return []
    category = Category.safety if kinds & {"weak_danger", "concern"} else Category.medical
    words = ", ".join(dict.fromkeys(hit.term for hit in live))
    reason = f"uncertain health/safety signal ({words}; {cue.term}) → P0 by caution"
    return [Candidate(P0, 9, category, reason, cautious=True)]


def spam_marks(ev: Evidence) -> list[str]:
    return sorted({hit.term for hit in ev.of("spam")})


def fallback(ctx: Context) -> Candidate:
    ev = ctx.evidence
    if ctx.inactive:
        return Candidate(P2, 9, Category.medical, "medical signal not current → P2")
    if ctx.hinted is not None:
        urgency = _DEFAULT_URGENCY.get(ctx.hinted, P2)
        return Candidate(
            urgency,
            9,
            ctx.hinted,
            f"no signal in the text; form category {ctx.hinted.value} → {urgency.value}",
        )
    if urgent := ev.of("urgent"):
        place, cue = ctx.place()
        if place is Place.school:
            # 老师快去看看，他在教室里不对劲: distress about a child at school now, in words we do not
            # know yet; missing an emergency is the worst error, so it goes to the nurse first.
            reason = f"urgent words ({urgent[0].term}) about a child at school now{_cue(cue)}, no known signal → P0"
            return Candidate(P0, 9, Category.medical, reason)
        return Candidate(
            P1, 9, Category.admin, f"urgent words ({urgent[0].term}) without a known signal → P1"
        )
    return Candidate(P2, 9, Category.admin, "no known signal: a question for the office → P2 admin")
