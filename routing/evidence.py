"""What a message says, as lexicon hits with positions, and how each signal is qualified.

A signal (发烧, 跟踪, 请假) counts only as the parent's own child's situation now.
The questions here look at the cue phrases around it: is it negated (没发烧),
over (烧已经退了), in the past (上周), about another child (听说班上有同学),
hypothetical (如果, 多少度)? Where is the child: at school or away? Is the
request about today or a later day?
"""

from __future__ import annotations

import re
from bisect import bisect_left
from enum import StrEnum
from functools import cached_property

from routing.lexicon import Hit, Lexicon
from routing.normalize import FEVER_C, Temperature, temperatures
from routing.patterns import with_patterns

# Clauses end at punctuation, and at a space that is not between two English words.
_CLAUSE_END = re.compile(r"[。！？!?;；\n,，、~～…]|\.(?!\d)|(?<![a-z0-9']) | (?![a-z0-9])")
_SENTENCE_END = re.compile(r"[。！？!?;；\n]|\.(?!\d)")
_ENGLISH_GAP = re.compile(r"(?: [a-z']+){0,2} ?")  # up to two words between "not" and "sick"
_QUESTION_AFTER = frozenset("吗嘛么没?")
_PERFECTIVE = frozenset("了过到")
_ASKING = re.compile(
    r"[?吗什多几怎如哪]|请问|想问|了解|咨询|是否|\b(?:what|how|which|when|is there|do we|does|should|can|could)\b"
)
_AGAIN = ("又", "还在", "还是", "仍")  # a signal said with these holds now: 又烧, 还在吐
_HABITUAL = ("平时", "平常", "一般", "通常", "usually", "normally")
_DONE_REACH = 4  # 磕破头了: a 了 this close after a signal, in its clause, tells it as done
# policy_question phrases that ask where a fever starts: a reading next to them is an example
_THRESHOLD = frozenset(("多少度", "几度", "what temperature", "算不算", "算发烧", "count as", "counts as"))

_NONE: list[Hit] = []  # never appended to

MEDICAL = (
    "medical_acute",
    "medical_unwell",
    "medical_mild",
    "medical_care",
    "medical_condition",
    "contagious",
)


class Place(StrEnum):
    school = "at school"
    away = "away from school"


class Status(StrEnum):
    live = "live"
    negated = "negated"
    resolved = "over"
    past = "in the past"
    other_child = "another child"
    hypothetical = "hypothetical"


class Evidence:
    def __init__(self, text: str, hits: list[Hit], readings: list[Temperature]) -> None:
        self.text = text
        self.by_kind: dict[str, list[Hit]] = {}
        for hit in hits:
            self.by_kind.setdefault(hit.kind, []).append(hit)
        self.temperatures = readings
        for reading in readings:
            if reading.celsius >= FEVER_C and not self._near(reading.start, reading.end, "weather", 8):
                fever = Hit(reading.start, reading.end, "medical_acute", "发烧", f"{reading.celsius:g}°C")
                self.by_kind.setdefault("medical_acute", []).append(fever)

    @cached_property
    def _clause_ends(self) -> list[int]:
        return [m.start() for m in _CLAUSE_END.finditer(self.text)]

    @cached_property
    def _sentence_ends(self) -> list[int]:
        return [m.start() for m in _SENTENCE_END.finditer(self.text)]

    # --- finding
    def of(self, kind: str) -> list[Hit]:
        return self.by_kind.get(kind, _NONE)

    def of_any(self, kinds: tuple[str, ...]) -> list[Hit]:
        return [hit for kind in kinds for hit in self.by_kind.get(kind, _NONE)]

    def has(self, *kinds: str) -> bool:
        return not self.by_kind.keys().isdisjoint(kinds)

    def same_clause(self, a: int, b: int) -> bool:
        return bisect_left(self._clause_ends, a) == bisect_left(self._clause_ends, b)

    def same_sentence(self, a: int, b: int) -> bool:
        return bisect_left(self._sentence_ends, a) == bisect_left(self._sentence_ends, b)

    def _near(self, start: int, end: int, kind: str, reach: int) -> bool:
        return any(
            (h.end <= start and start - h.end <= reach or h.start >= end and h.start - end <= reach)
            and self.same_clause(min(h.start, start), max(h.end, end) - 1)
            for h in self.of(kind)
        )

    def _between(self, kind: str, start: int, end: int) -> Hit | None:
        for hit in self.of(kind):
            if start <= hit.start and hit.end <= end:
                return hit
        return None

    def asked(self, hit: Hit) -> bool:
        """去医院吗, 好了吗: the phrase is asked about, not stated."""
        return self.text[hit.end : hit.end + 1] in _QUESTION_AFTER

    # --- how a signal is qualified
    def negation(self, hit: Hit) -> Hit | None:
        """没发烧, 没有受伤, not sick, doesn't have a fever: the negation stands right before."""
        for cue in self.of("negation"):
            if cue.end > hit.start:
                break
            gap = self.text[cue.end : hit.start]
            if not gap.strip() or (cue.term.isascii() and _ENGLISH_GAP.fullmatch(gap)):
                return cue
        return None

    def resolution(self, hit: Hit, kind: str = "resolved") -> Hit | None:
        """烧已经退了, 现在好了, fever broke: said after the signal, not asked (好了吗), not habitual."""
        for cue in self.of(kind):
            if cue.start >= hit.end and not self.asked(cue):
                before = self.text[max(hit.end, cue.start - 10) : cue.start]
                if not any(word in before for word in _HABITUAL):
                    return cue
        return None

    def past(self, hit: Hit) -> Hit | None:
        """上周发烧, 摔过, last week: unless something says it holds now (现在又, 还没好)."""
        cue = None
        for candidate in self.of("past"):
            if (
                candidate.end <= hit.start
                and hit.start - candidate.end <= 12
                and self.same_sentence(candidate.start, hit.start)
            ):
                cue = candidate
        if cue is None:
            cue = self._english_past_after(hit)
        if cue is None and self.text[hit.end : hit.end + 1] == "过" and hit.written == "":
            cue = Hit(hit.end, hit.end + 1, "past", "过")
        if cue is None or hit.term.startswith(_AGAIN):
            return None
        for kind in ("current", "today"):
            for now in self.of(kind):
                if cue.end <= now.start and now.start - hit.end <= 8:
                    return None  # 上周发烧 现在又烧了, 上周摔了 今天还疼
        return cue

    def _english_past_after(self, hit: Hit) -> Hit | None:
        """English says when after what: "sprained his wrist at the weekend"."""
        for cue in self.of("past"):
            if (
                cue.term.isascii()
                and 0 <= cue.start - hit.end <= 20
                and self.same_clause(hit.start, cue.start)
            ):
                return cue
        return None

    def other_child(self, hit: Hit, rumour_only: bool = False) -> Hit | None:
        """听说班上有同学发烧了, someone in class has the flu: not the parent's own child."""
        kinds = ("rumour",) if rumour_only else ("rumour", "third_party")
        for kind in kinds:
            for cue in self.of(kind):
                if cue.end > hit.start:
                    break
                if kind == "rumour":
                    # hearsay covers its own clause, or others named after it (听说隔壁班有孩子…);
                    # 听说今天午饭有花生酱，他已经吃了: what the parent heard is not the child's state
                    close = self.same_clause(cue.start, hit.start) or bool(
                        self._between("third_party", cue.end, hit.start)
                    )
                else:
                    close = hit.start - cue.end <= 15 and self.same_clause(cue.start, hit.start)
                if close and not self._between("own_child", cue.end, hit.start):
                    return cue
        return None

    def hypothetical(self, hit: Hit) -> Hit | None:
        """如果孩子发烧, 发烧多少度需要请假: a question about rules, not an event."""
        for cue in self.of("conditional"):
            if cue.end <= hit.start and self.same_sentence(cue.start, hit.start):
                return cue
        if self.concrete():
            return None
        if policy := self._asked(self.of("policy_question")):
            return policy
        own_case = self.of("permission_question")
        if own_case and not self._said_done(hit):
            return own_case[0]
        return None

    def _said_done(self, hit: Hit) -> bool:
        """发烧了, 磕破头了, 流了好多血: the clause tells it as done, so it is an event, not a question."""
        if self.text[hit.end : hit.end + 1] in _PERFECTIVE or "了" in hit.term:
            return True
        ends = self._clause_ends
        index = bisect_left(ends, hit.end)
        clause_end = ends[index] if index < len(ends) else len(self.text)
        done = self.text.find("了", hit.end, min(clause_end, hit.end + _DONE_REACH))
        # 发烧退了: the 了 tells the end of the fever, not the fever
        return done >= 0 and not any(cue.start <= done < cue.end for cue in self.of("resolved"))

    def rule_question(self) -> Hit | None:
        """多少度, 规定, 需不需要: the message asks about rules."""
        own_case = self.of("permission_question")
        return self._asked(self.of("policy_question")) or (own_case[0] if own_case else None)

    def _asked(self, cues: list[Hit]) -> Hit | None:
        """A rules word in a question (学校有什么规定?), not in a statement (按学校规定复课)."""
        for cue in cues:
            if _ASKING.search(cue.term):
                return cue
            ends = self._sentence_ends
            index = bisect_left(ends, cue.start)
            start = ends[index - 1] if index else 0
            end = ends[index] + 1 if index < len(ends) else len(self.text)
            if _ASKING.search(self.text[start:end]):
                return cue
        return None

    def concrete(self) -> bool:
        """A reading, a "now" or a call from school makes a question about a real event
        (but not a reading asked about as a threshold: 多少度算发烧？37度5算不算)."""
        threshold = any(cue.term in _THRESHOLD for cue in self.of("policy_question"))
        return (
            (not threshold and any(t.celsius >= FEVER_C for t in self.temperatures))
            or self.has("current")
            or self.has("school_call")
        )

    def status(self, hit: Hit, rumour_only: bool = False) -> tuple[Status, Hit | None]:
        if cue := self.negation(hit):
            return Status.negated, cue
        if cue := self.other_child(hit, rumour_only):
            return Status.other_child, cue
        if cue := self.hypothetical(hit):
            return Status.hypothetical, cue
        if hit.kind == "medical_condition":
            return Status.live, None  # a condition diagnosed last month still holds
        if cue := self.resolution(hit):
            return Status.resolved, cue
        if cue := self.past(hit):
            return Status.past, cue
        return Status.live, None

    # --- when and where
    def earlier(self, hit: Hit) -> Hit | None:
        """昨天在学校, 孩子回家说: it happened, but not now (unless 现在, 刚才 say otherwise)."""
        if self.has("current"):
            return None
        for cue in self.of_any(("earlier", "past")):
            if cue.end <= hit.start and self.same_sentence(cue.start, hit.start):
                return cue
        return None

    def today(self) -> Hit | None:
        hits = self.of("today")
        return hits[0] if hits else None

    def later(self) -> Hit | None:
        """明天, 下周, from next week: a later day or a standing arrangement (and not today)."""
        hits = self.of("later")
        return hits[0] if hits and not self.has("today") else None

    def place(self) -> tuple[Place | None, Hit | None]:
        """At school (the school called, 在学校 now) or away (在家, 请假); the later cue wins over 在学校."""
        calls = self.of("school_call")
        if calls:
            return Place.school, calls[0]
        school = [
            h
            for h in self.of("at_school")
            if not self.earlier(h) and not self.hypothetical(h) and not self.negation(h)
        ]
        home = [h for h in self.of("at_home") if not self.asked(h)]
        away = home + [
            h
            for h in self.of("attendance")
            if not self.negation(h) and not self.hypothetical(h) and not self.asked(h)
        ]
        if school:
            if home and max(h.start for h in home) > school[-1].start:
                return Place.away, max(home, key=lambda h: h.start)
            return Place.school, school[-1]
        if away:
            return Place.away, min(away, key=lambda h: h.start)
        if returning := self.of("returning"):
            return Place.away, returning[0]  # 明天回学校: not at school now
        return None, None


def gather(text: str, lexicon: Lexicon) -> Evidence:
    """The evidence in a normalized message: lexicon phrases, sentence patterns, temperatures."""
    return Evidence(text, with_patterns(text, lexicon.scan(text)), temperatures(text))
