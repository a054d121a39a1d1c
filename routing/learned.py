"""The learned triage layer: a character n-gram model's urgency and category, with calibrated probabilities.

`relay train` (relay/cli/training.py) fits two logistic regressions with scikit-learn on
TF-IDF-weighted 1-4 character n-grams of the normalized text and writes their weights here,
to routing/models/triage.npz. Reading them needs only numpy: a message's score for a label
is the sum of its n-grams' weights (each n-gram weighted (1 + ln count) * idf, the vector
scaled to unit length), plus the label's intercept; a softmax at the fitted temperature
turns scores into probabilities that mean what they say.

The file is loaded once, lazily. A missing or corrupt file is never an error for a caller:
`default_model()` returns None, says so once on stderr, and `model_state()` tells the
metrics, so triage goes on with the rules alone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from routing.labels import Category, Urgency

MODEL_FILE = Path(__file__).parent / "models" / "triage.npz"
# Operators may point Relay at another model file (a retrained one) without reinstalling.
MODEL_ENV = "RELAY_TRIAGE_MODEL"
NGRAM_SIZES = (1, 2, 3, 4)
URGENCIES: tuple[Urgency, ...] = tuple(Urgency)
CATEGORIES: tuple[Category, ...] = tuple(Category)
_ARRAYS = ("vocabulary", "idf", "weights", "bias", "settings")
_VOCABULARY_SEPARATOR = "\x00"  # normalized text never holds it

_EDGES = " ,，.。!！?？;；:：、~～…-—()（）\"'“”‘’"
_log = logging.getLogger("routing.learned")


def ngrams(normalized: str) -> list[str]:
    """Every 1-4 character n-gram of an already normalized text; training and inference share it."""
    n = len(normalized)
    return [normalized[i : i + size] for size in NGRAM_SIZES for i in range(n - size + 1)]


@dataclass(frozen=True)
class Policy:
    """How the model's probabilities become a verdict, fitted on held-out folds at training time."""

    urgency_temperature: float = 1.0
    category_temperature: float = 1.0
    p0_threshold: float = 0.5  # the model says P0 at P(P0) >= this, chosen for P0 recall
    # A P0 from a rule's known phrase stands unless the model finds an emergency less likely than this:
    # the phrases were tuned on other writers, and on new ones a few fire on look-alikes.
    rule_p0_floor: float = 0.0
    category_threshold: float = 0.5  # the model's category overrides a rule's phrase from this probability
    fallback_category_threshold: float = 0.0  # ... and the rules' guess when no rule knew a word, from this


@dataclass(frozen=True)
class Prediction:
    urgency: Urgency
    category: Category
    urgency_probabilities: tuple[float, ...]  # in URGENCIES order
    category_probabilities: tuple[float, ...]  # in CATEGORIES order
    # the n-grams found (vocabulary rows) and their TF-IDF values, to explain a verdict only when asked
    rows: Any = field(repr=False, default=None)
    values: Any = field(repr=False, default=None)

    def probability(self, label: Urgency | Category) -> float:
        if isinstance(label, Urgency):
            return self.urgency_probabilities[URGENCIES.index(label)]
        return self.category_probabilities[CATEGORIES.index(label)]


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities from scores (along the last axis) at a temperature: above 1 softer, below 1 sharper."""
    scaled = scores / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    result: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return result


class Model:
    """The weights of both classifiers over one vocabulary: columns 0-3 urgency, 4-11 category."""

    def __init__(
        self,
        vocabulary: Mapping[str, int],
        idf: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray,
        policy: Policy,
        about: Mapping[str, Any] | None = None,
    ) -> None:
        width = len(URGENCIES) + len(CATEGORIES)
        if weights.shape != (len(vocabulary), width) or bias.shape != (width,) or idf.shape != (len(vocabulary),):
            raise ValueError("model arrays do not fit together")
        self.vocabulary = dict(vocabulary)
        self.idf = idf.astype(np.float32)
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float64)
        self.policy = policy
        self.about = dict(about or {})

    def predict(self, normalized: str) -> Prediction:
        counts: dict[int, int] = {}
        lookup = self.vocabulary.get
        for gram in ngrams(normalized):
            row = lookup(gram)
            if row is not None:
                counts[row] = counts.get(row, 0) + 1
        scores = self.bias.copy()
        rows = np.fromiter(counts, dtype=np.int64, count=len(counts))
        values = np.empty(0, dtype=np.float64)
        if counts:
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values = (1.0 + np.log(tf)) * self.idf[rows]
            values /= np.sqrt(values @ values)
            scores += values @ self.weights[rows]
        split = len(URGENCIES)
        urgency_p = softmax(scores[:split], self.policy.urgency_temperature)
        category_p = softmax(scores[split:], self.policy.category_temperature)
        return Prediction(
            urgency=self._urgency(urgency_p),
            category=CATEGORIES[int(category_p.argmax())],
            urgency_probabilities=tuple(float(p) for p in urgency_p),
            category_probabilities=tuple(float(p) for p in category_p),
            rows=rows,
            values=values,
        )

    def _urgency(self, p: np.ndarray) -> Urgency:
        """The model's own verdict: P0 from its threshold, otherwise the likeliest label."""
        if p[0] >= self.policy.p0_threshold:
            return Urgency.P0
        return URGENCIES[int(p[1:].argmax()) + 1]

    def verdict(self, prediction: Prediction) -> Urgency:
        """The model's urgency (P0 from its threshold, otherwise the likeliest label)."""
        return prediction.urgency

    def strongest(self, prediction: Prediction, label: Urgency | Category, text: str, limit: int = 3) -> list[str]:
        """The stretches of the (normalized) text that pushed most towards `label`, in words a teacher reads:
        the n-grams with the largest share of the label's score, merged where they overlap."""
        if prediction.rows is None or not len(prediction.rows):
            return []
        column = (
            URGENCIES.index(label) if isinstance(label, Urgency) else len(URGENCIES) + CATEGORIES.index(label)
        )
        block = self.weights[prediction.rows]
        start, stop = (0, len(URGENCIES)) if isinstance(label, Urgency) else (len(URGENCIES), block.shape[1])
        # what an n-gram adds to this label beyond what it adds to the others on average
        share = prediction.values * (block[:, column] - block[:, start:stop].mean(axis=1))
        names = self._names(prediction.rows)
        spans: list[tuple[int, int]] = []
        for index in np.argsort(-share, kind="stable")[: limit * 4]:
            if share[index] <= 0:
                break
            gram = names[int(index)]
            if len(gram) < 2 or gram.isspace():
                continue  # a single character says little to a teacher
            at = text.find(gram)
            if at >= 0:
                spans.append((at, at + len(gram)))
        merged: list[list[int]] = []  # in the order of the strongest n-gram each holds
        for begin, end in spans:
            overlapping = [m for m in merged if begin <= m[1] and m[0] <= end]
            if overlapping:
                overlapping[0][0], overlapping[0][1] = min(overlapping[0][0], begin), max(overlapping[0][1], end)
            else:
                merged.append([begin, end])
        stretches = [text[b:e].strip(_EDGES) for b, e in merged]
        return [s for s in dict.fromkeys(stretches) if s][:limit]

    def _names(self, rows: np.ndarray) -> list[str]:
        if not hasattr(self, "_by_row"):
            self._by_row = {row: gram for gram, row in self.vocabulary.items()}
        return [self._by_row[int(row)] for row in rows]


# --- the file


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write the model as an .npz whose bytes depend only on the model (no timestamps), so that training
    twice on the same data gives the same file."""
    settings = {"policy": model.policy.__dict__, "about": model.about,
                "urgencies": [u.value for u in URGENCIES], "categories": [c.value for c in CATEGORIES]}
    grams = sorted(model.vocabulary, key=model.vocabulary.__getitem__)
    arrays = {
        "vocabulary": np.frombuffer(_VOCABULARY_SEPARATOR.join(grams).encode("utf-8"), dtype=np.uint8),
        "idf": model.idf.astype(np.float32),
        "weights": model.weights.astype(np.float32),
        "bias": model.bias.astype(np.float64),
        "settings": np.frombuffer(json.dumps(settings, sort_keys=True).encode("utf-8"), dtype=np.uint8),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in _ARRAYS:
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def load(path: str | os.PathLike[str]) -> Model:
    """Read a model file; raises ValueError (or OSError) when it is missing, damaged or not ours."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAYS}
        settings = json.loads(arrays["settings"].tobytes().decode("utf-8"))
        if settings["urgencies"] != [u.value for u in URGENCIES] or settings["categories"] != [
            c.value for c in CATEGORIES
        ]:
            raise ValueError("the model was trained on other labels")
        grams = arrays["vocabulary"].tobytes().decode("utf-8").split(_VOCABULARY_SEPARATOR)
        vocabulary = {gram: row for row, gram in enumerate(grams)}
        policy = Policy(**settings["policy"])
        model = Model(vocabulary, arrays["idf"], arrays["weights"], arrays["bias"], policy, settings["about"])
    except OSError:
        raise
    except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"not a usable triage model: {type(exc).__name__}: {exc}") from exc
    if not (np.isfinite(model.weights).all() and np.isfinite(model.bias).all() and np.isfinite(model.idf).all()):
        raise ValueError("not a usable triage model: weights that are not numbers")
    return model


def model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV) or MODEL_FILE)


@cache
def default_model() -> Model | None:
    """The shipped (or RELAY_TRIAGE_MODEL) model, loaded once; None, with one loud warning, when it cannot be
    read: triage then runs on the rules alone."""
    path = model_path()
    try:
        model: Model | None = load(path)
    except (OSError, ValueError) as exc:
        _log.warning(
            "triage model %s cannot be read (%s): classifying with the rules alone", path, exc
        )
        model = None
    return model


def model_loaded() -> bool:
    """Whether this process classifies with the model (loads it if nobody has yet); for the metrics."""
    return default_model() is not None
