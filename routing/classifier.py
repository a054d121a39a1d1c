"""Urgency and category of a parent's message, with the evidence that decided them.

Each rule reads the message's evidence (routing/evidence.py) and proposes
candidates; the most urgent candidate wins, and among equally urgent ones the
rule's own order, then the form's category_hint, break the tie. Phrases live in
routing/lexicons/, so a school tunes the words without touching these rules.

Missing an emergency is the worst error: a health or safety signal whose place
is unclear is read as happening at school now, and the reasons say so.

Beside the rules, a learned model (routing/learned.py) reads the same normalized text.
`classify` takes the more urgent of the two, so that words no rule knows can still
raise an emergency, and the model's category where the rules have no phrase for the
message or the model is sure; the reasons say which moved the verdict. Without a
model file the rules decide alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from routing import learned
from routing.evidence import Evidence, gather
from routing.labels import CATEGORY_WORDS, URGENCY_WORDS, Category, Urgency
from routing.lexicon import Lexicon, default_lexicon
from routing.normalize import normalize
from routing.rules import P0, P3, Candidate, Context, fallback, medical, net, routine, safety, spam_marks


@dataclass(frozen=True)
class Classification:
    urgency: Urgency
    category: Category
    reasons: tuple[str, ...]
    known_signal: bool = True  # False when no rule knew a word of the message (the fallback decided)


_HINT_WEIGHT = 5  # a form's category moves a candidate this many places up among equals
_MAX_REASONS = 5
_RULES: tuple[Callable[[Context], list[Candidate]], ...] = (medical, safety, routine, net)


def _own_child_named(evidence: Evidence) -> bool:
    return any(hit.term.startswith(("我", "俺", "my", "our")) for hit in evidence.of("own_child"))


class _Shipped:
    """The default for `classify(model=...)`: the shipped model, loaded once."""


SHIPPED = _Shipped()


def classify(
    text: str,
    hint: str | None = None,
    *,
    lexicon: Lexicon | None = None,
    model: learned.Model | None | _Shipped = SHIPPED,
) -> Classification:
    """Urgency, category and the evidence behind them, from the rules and the learned model; pure and fast
    (lexicons and model load once). `model=None` asks the rules alone."""
    normalized = normalize(text)
    rules = _by_rules(normalized, hint, lexicon or default_lexicon())
    chosen = learned.default_model() if isinstance(model, _Shipped) else model
    if chosen is None:
        return rules
    return decide(rules, chosen, chosen.predict(normalized), normalized)


def classify_by_rules(text: str, hint: str | None = None, *, lexicon: Lexicon | None = None) -> Classification:
    return _by_rules(normalize(text), hint, lexicon or default_lexicon())


def _by_rules(normalized: str, hint: str | None, lexicon: Lexicon) -> Classification:
    evidence = gather(normalized, lexicon)
    ctx = Context(evidence, lexicon.hint_category(hint), lexicon)
    candidates = [candidate for rule in _RULES for candidate in rule(ctx)]
    known_signal = bool(candidates or ctx.inactive)
    candidates = candidates or [fallback(ctx)]

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
    return Classification(best.urgency, best.category, tuple(reasons[:_MAX_REASONS]), known_signal)


def _grounds(model: learned.Model, prediction: learned.Prediction, label: Urgency | Category, text: str) -> str:
    stretches = model.strongest(prediction, label, text)
    return "、".join(f"'{s}'" for s in stretches) if stretches else "整体措辞"


def decide(
    rules: Classification, model: learned.Model, prediction: learned.Prediction, normalized: str
) -> Classification:
    """The more urgent of the rules and the model (missing an emergency is the worst error); the model's
    category where it raised the urgency, or where it is surer than the threshold fitted on held-out
    writers (one for a rule's phrase, a lower one where no rule knew a word of the message)."""
    urgency, category, reasons = rules.urgency, rules.category, list(rules.reasons)
    alarm = model.alarm(prediction)
    raised = alarm is not None and alarm.rank < rules.urgency.rank
    if alarm is not None and raised:
        urgency = alarm
        sure = prediction.probability(urgency)
        grounds = _grounds(model, prediction, urgency, normalized)
        reasons.insert(
            0, f"模型判断：{URGENCY_WORDS[urgency]} {urgency.value}，可能性 {sure:.0%}（依据：{grounds}）"
        )
    sure_of_category = prediction.probability(prediction.category)
    policy = model.policy
    bar = policy.category_threshold if rules.known_signal else policy.fallback_category_threshold
    if prediction.category is not category and (raised or sure_of_category >= bar):
        category = prediction.category
        grounds = _grounds(model, prediction, category, normalized)
        reasons.insert(
            1 if raised else 0,
            f"模型判断类别：{CATEGORY_WORDS[category]} {category.value}，可能性 {sure_of_category:.0%}"
            f"（依据：{grounds}）",
        )
    if not raised and category is rules.category:
        return rules
    return Classification(urgency, category, tuple(reasons[:_MAX_REASONS]), rules.known_signal)
