"""Urgency and category of a parent's message, with the evidence that decided them.

Each rule reads the message's evidence (routing/evidence.py) and proposes
candidates; the most urgent candidate wins, and among equally urgent ones the
rule's own order, then the form's category_hint, break the tie. Phrases live in
routing/lexicons/, so a school tunes the words without touching these rules.

Missing an emergency is the worst error: a health or safety signal whose place
is unclear is read as happening at school now, and the reasons say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from routing.evidence import Evidence, gather
from routing.labels import Category, Urgency
from routing.lexicon import Lexicon, default_lexicon
from routing.normalize import normalize
from routing.rules import P0, P3, Candidate, Context, fallback, medical, net, routine, safety, spam_marks


@dataclass(frozen=True)
class Classification:
    urgency: Urgency
    category: Category
    reasons: tuple[str, ...]


_HINT_WEIGHT = 5  # a form's category moves a candidate this many places up among equals
_MAX_REASONS = 5
_RULES: tuple[Callable[[Context], list[Candidate]], ...] = (medical, safety, routine, net)


def _own_child_named(evidence: Evidence) -> bool:
    return any(hit.term.startswith(("我", "俺", "my", "our")) for hit in evidence.of("own_child"))


def classify(text: str, hint: str | None = None, *, lexicon: Lexicon | None = None) -> Classification:
    """Urgency, category and the evidence behind them; pure and fast (lexicons load once)."""
    lexicon = lexicon or default_lexicon()
    evidence = gather(normalize(text), lexicon)
    ctx = Context(evidence, lexicon.hint_category(hint), lexicon)
    candidates = [candidate for rule in _RULES for candidate in rule(ctx)] or [fallback(ctx)]

    def rank(candidate: Candidate) -> tuple[int, int]:
        bonus = _HINT_WEIGHT if candidate.category is ctx.hinted else 0
        return candidate.urgency.rank, candidate.order - bonus

    best = min(candidates, key=rank)
    marks = spam_marks(evidence)
    if len(marks) >= 2 and not (best.urgency is P0 and _own_child_named(evidence)):
        reason = f"advert or chain message: {', '.join(marks[:3])} → P3"
        return Classification(P3, Category.other, (reason,))

    reasons = [best.reason]
    if ctx.hinted is not None:
        reasons.append(f"form category: {ctx.hinted.value} (evidence, not the verdict)")
    reasons += [note for note in ctx.notes if note not in reasons]
    runner_up = sorted(
        {c.reason for c in candidates if c.urgency is best.urgency and c.category is not best.category}
    )
    reasons += runner_up[:1]
    return Classification(best.urgency, best.category, tuple(reasons[:_MAX_REASONS]))
