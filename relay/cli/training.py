"""`relay train`: fit the learned triage layer on labelled JSON Lines and write routing/models/triage.npz.

Reproducible: files are read in sorted order, every random choice has a fixed seed, and
the model file's bytes depend only on the data. The temperatures and thresholds are fitted
on folds that hold out whole writers, so that they describe a writer the model has not read.
scikit-learn is needed here only (the `train` extra); classifying needs numpy alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from relay.cli.triage_eval import Example, InputError, read_examples
from routing import learned
from routing.classifier import classify_by_rules
from routing.normalize import normalize

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

DEFAULT_INPUTS = ("tests/data",)
SEED = 20261201
C = 10.0  # inverse regularisation; TF-IDF vectors of short texts want little of it
MIN_DF = 2  # an n-gram seen in one message only is noise and size
MAX_FEATURES = 300_000  # keeps the file under 20 MB whatever the corpus
P0_RECALL_TARGET = 0.99  # on held-out writers, the model alone; the rules' known phrases catch some of the rest
# A rule's P0 is overruled only where the model is near-certain there is no emergency (LOWO: over-triage
# 10.3 % → about 8.5 %, P0 recall unchanged).
RULE_P0_FLOOR = 0.03
FOLDS = 5
# 0.00 .. 0.95, and 1.01: never
CATEGORY_THRESHOLDS = (*(round(0.05 * i, 2) for i in range(20)), 1.01)


class TrainingError(ValueError):
    pass


def input_files(inputs: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files += sorted(path.glob("*.jsonl"))
        elif path.exists():
            files.append(path)
        else:
            raise TrainingError(f"{given}: no such file or directory")
    if not files:
        raise TrainingError(f"no .jsonl files in {', '.join(inputs)}")
    return sorted(set(files))


def read_corpus(files: Sequence[Path]) -> list[Example]:
    """Every labelled line, in file order. A line whose text repeats another's with another urgency is refused,
    naming both lines, since one of them is mislabelled; the same urgency with another category is kept (two
    writers reading "收到，谢谢老师" as an acknowledgement or as thanks, both of which LABELS.md allows)."""
    examples: list[Example] = []
    seen: dict[str, tuple[str, Example]] = {}
    for path in files:
        for example in read_examples(path):
            key = normalize(example.text)
            where = f"{path}:{example.line}"
            if key in seen:
                first_where, first = seen[key]
                if first.urgency != example.urgency:
                    raise TrainingError(
                        f"{where}: the same text as {first_where} with other labels "
                        f"({example.urgency.value} {example.category.value} vs "
                        f"{first.urgency.value} {first.category.value})"
                    )
            else:
                seen[key] = (where, example)
            examples.append(example)
    return examples


# --- fitting


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise TrainingError("relay train needs scikit-learn: pip install -e '.[train]' (make install does)") from exc
    from sklearn import feature_extraction, linear_model, model_selection

    return feature_extraction, linear_model, model_selection


def _vectorizer() -> Any:
    feature_extraction, _, _ = _sklearn()
    return feature_extraction.text.TfidfVectorizer(
        analyzer=learned.ngrams, sublinear_tf=True, min_df=MIN_DF, max_features=MAX_FEATURES, dtype=np.float32
    )


def _regression() -> Any:
    _, linear_model, _ = _sklearn()
    return linear_model.LogisticRegression(
        C=C, class_weight="balanced", solver="newton-cg", max_iter=1000, random_state=SEED
    )


def _scores(texts: list[str], urgencies: np.ndarray, categories: np.ndarray, held: list[str]) -> np.ndarray:
    """Raw scores (urgency columns, then category columns) for `held`, from a fit on `texts`."""
    vectorizer = _vectorizer()
    x: csr_matrix = vectorizer.fit_transform(texts)
    held_x = vectorizer.transform(held)
    out = []
    for labels, width in ((urgencies, len(learned.URGENCIES)), (categories, len(learned.CATEGORIES))):
        regression = _regression().fit(x, labels)
        full = np.full((len(held), width), -1e4)  # a label absent from the training fold is never predicted
        full[:, regression.classes_] = regression.decision_function(held_x)
        out.append(full)
    return np.hstack(out)


def _folds(groups: list[str], labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    _, _, model_selection = _sklearn()
    writers = sorted(set(groups))
    if len(writers) >= 3:
        splitter = model_selection.GroupKFold(n_splits=min(FOLDS, len(writers)))
        return list(splitter.split(np.zeros(len(groups)), labels, groups))
    splitter = model_selection.StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    return list(splitter.split(np.zeros(len(groups)), labels))


def _temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        scaled = scores / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_p = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(labels)), labels].mean())

    return round(float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x)), 4)


def _recall_threshold(probabilities: np.ndarray, target: float, low: float, high: float) -> float:
    """The highest threshold at which `target` of these (true-label) probabilities still reach it."""
    if not len(probabilities):
        return high
    ordered = np.sort(probabilities)
    at = int(np.floor((1 - target) * len(ordered)))
    return round(float(np.clip(ordered[min(at, len(ordered) - 1)], low, high)), 4)


def fit_policy(
    oof: np.ndarray, urgencies: np.ndarray, categories: np.ndarray, rule_categories: np.ndarray,
    rules_known: np.ndarray,
) -> learned.Policy:
    """Temperatures, thresholds and the category hand-over, from out-of-fold scores of held-out writers."""
    split = len(learned.URGENCIES)
    urgency_t = _temperature(oof[:, :split], urgencies)
    category_t = _temperature(oof[:, split:], categories)
    urgency_p = learned.softmax(oof[:, :split], urgency_t)
    category_p = learned.softmax(oof[:, split:], category_t)
    p0 = _recall_threshold(urgency_p[urgencies == 0, 0], P0_RECALL_TARGET, 0.05, 0.9)
    # The model's category replaces the rules' from the probabilities that do best on held-out writers:
    # one where a rule's phrase decided, one where no rule knew a word of the message.
    model_category = category_p.argmax(axis=1)
    confidence = category_p.max(axis=1)

    def accuracy(thresholds: tuple[float, float]) -> float:
        over_phrase, over_fallback = thresholds
        bar = np.where(rules_known, over_phrase, over_fallback)
        chosen = np.where(confidence >= bar, model_category, rule_categories)
        return float((chosen == categories).mean())

    pairs = [(a, b) for a in CATEGORY_THRESHOLDS for b in CATEGORY_THRESHOLDS]
    over_phrase, over_fallback = max(pairs, key=lambda pair: (accuracy(pair), pair))
    return learned.Policy(urgency_t, category_t, p0, RULE_P0_FLOOR, over_phrase, over_fallback)


def fit(examples: Sequence[Example], progress: Callable[[str], None] | None = None) -> learned.Model:
    """Train on every example: policy from writer-held-out folds, weights from all of them."""
    say = progress or (lambda _: None)
    texts = [normalize(e.text) for e in examples]
    urgencies = np.array([learned.URGENCIES.index(e.urgency) for e in examples])
    categories = np.array([learned.CATEGORIES.index(e.category) for e in examples])
    groups = [e.writer for e in examples]
    rules = [classify_by_rules(e.text, e.hint) for e in examples]
    rule_categories = np.array([learned.CATEGORIES.index(r.category) for r in rules])
    rules_known = np.array([r.known_signal for r in rules])

    oof = np.zeros((len(examples), len(learned.URGENCIES) + len(learned.CATEGORIES)))
    folds = _folds(groups, urgencies)
    for number, (train_rows, held_rows) in enumerate(folds, 1):
        say(f"calibration fold {number}/{len(folds)}")
        oof[held_rows] = _scores(
            [texts[i] for i in train_rows], urgencies[train_rows], categories[train_rows],
            [texts[i] for i in held_rows],
        )
    policy = fit_policy(oof, urgencies, categories, rule_categories, rules_known)

    say("final fit on every example")
    vectorizer = _vectorizer()
    x = vectorizer.fit_transform(texts)
    weights, bias = [], []
    for labels, width in ((urgencies, len(learned.URGENCIES)), (categories, len(learned.CATEGORIES))):
        regression = _regression().fit(x, labels)
        coef = np.zeros((width, x.shape[1]))
        intercept = np.full(width, -1e4)
        coef[regression.classes_] = regression.coef_
        intercept[regression.classes_] = regression.intercept_
        weights.append(coef.T)
        bias.append(intercept)
    import sklearn

    about = {
        "examples": len(examples),
        "writers": sorted(set(groups)),
        "seed": SEED,
        "C": C,
        "min_df": MIN_DF,
        "scikit-learn": sklearn.__version__,
    }
    vocabulary = {gram: int(row) for gram, row in vectorizer.vocabulary_.items()}
    return learned.Model(
        vocabulary, vectorizer.idf_.astype(np.float32), np.hstack(weights), np.concatenate(bias), policy, about
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relay train", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "inputs", nargs="*", default=list(DEFAULT_INPUTS),
        help="labelled JSON Lines files or folders of them (default tests/data); one writer per file "
        "unless a line names its own",
    )
    parser.add_argument("--out", default=str(learned.MODEL_FILE), help="model file (default the shipped one)")
    args = parser.parse_args(argv)
    try:
        files = input_files(args.inputs)
        examples = read_corpus(files)
        model = fit(examples, progress=lambda step: print(f"relay train: {step}", file=sys.stderr))
    except (TrainingError, InputError, OSError) as exc:
        print(f"relay train: {exc}", file=sys.stderr)
        return 2
    learned.save(model, args.out)
    size = Path(args.out).stat().st_size
    policy = model.policy
    print(
        f"relay train: {len(examples)} messages from {len(files)} files, {len(model.vocabulary):,} n-grams → "
        f"{args.out} ({size / 1e6:.1f} MB); P0 threshold {policy.p0_threshold}, rule P0 floor "
        f"{policy.rule_p0_floor}, category thresholds {policy.category_threshold} (over a rule's phrase) / "
        f"{policy.fallback_category_threshold} (no rule knew a word), temperatures "
        f"{policy.urgency_temperature} / {policy.category_temperature}"
    )
    return 0
