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
    cautious: bool = False  # the rules' P0 came from caution (weak signals, place unclear), not a known phrase
    injured: bool = False  # someone is hurt or ill now: a safety emergency with an injury reaches the nurse too


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
    injured = any(c.urgency is P0 and c.category is Category.medical for c in candidates)
    return Classification(best.urgency, best.category, tuple(reasons[:_MAX_REASONS]), known_signal,
                          best.urgency is P0 and best.cautious, injured)


def _grounds(model: learned.Model, prediction: learned.Prediction, label: Urgency | Category, text: str) -> str:
    stretches = model.strongest(prediction, label, text)
    return "、".join(f"'{s}'" for s in stretches) if stretches else "整体措辞"


def decide(
    rules: Classification, model: learned.Model, prediction: learned.Prediction, normalized: str
) -> Classification:
    """Missing an emergency first: the model says P0 from a threshold chosen on held-out writers for 99 %
    P0 recall, and a P0 from a rule's known phrase stands unless the model is near-certain there is no
    emergency. Below P0 the model decides: on writers it never saw it reads urgency far better than the
    rules, whose cautious P0s (weak signals, a symptom whose place is unclear) and P1s made most of their
    18 % over-triage. The model's category wins where it is surer than the threshold fitted on held-out
    writers (make eval prints the table behind each of these choices)."""
    verdict = model.verdict(prediction)
    rule_stands = (rules.urgency is Urgency.P0 and not rules.cautious
                   and prediction.probability(Urgency.P0) >= model.policy.rule_p0_floor)
    urgency = Urgency.P0 if rule_stands else verdict
    category, reasons = rules.category, list(rules.reasons)
    if urgency is not rules.urgency:
        sure = prediction.probability(urgency)
        grounds = _grounds(model, prediction, urgency, normalized)
        reasons.insert(
            0, f"模型判断：{URGENCY_WORDS[urgency]} {urgency.value}，可能性 {sure:.0%}（依据：{grounds}）"
        )
    sure_of_category = prediction.probability(prediction.category)
    policy = model.policy
    bar = policy.category_threshold if rules.known_signal else policy.fallback_category_threshold
    if prediction.category is not category and (urgency is not rules.urgency or sure_of_category >= bar):
        category = prediction.category
        grounds = _grounds(model, prediction, category, normalized)
        reasons.insert(
            1 if urgency is not rules.urgency else 0,
            f"模型判断类别：{CATEGORY_WORDS[category]} {category.value}，可能性 {sure_of_category:.0%}"
            f"（依据：{grounds}）",
        )
    if urgency is rules.urgency and category is rules.category:
        return rules
    return Classification(urgency, category, tuple(reasons[:_MAX_REASONS]), rules.known_signal,
                          injured=rules.injured)
