"""The school's words for each signal, kept in plain text files under routing/lexicons/.

Every phrase of every list goes into one Aho-Corasick automaton, so a message is
scanned once however many phrases there are. A school adds phrases by passing
its own directory with files of the same names (`load_lexicon(extra_dir=...)`);
see routing/lexicons/README.md for the format and the meaning of each file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import ahocorasick

from routing.labels import Category
from routing.normalize import normalize
from routing.sound import SoundIndex

_SPECIAL = ("typos", "sound_alike", "not_typos", "hints")
# Weak signals (weak_body.txt, weak_distress.txt …) are scanned apart, and only by the safety net:
# broad words like 头 or hand must never hide a phrase of the lists the rules read.
_WEAK = "weak_"
_VOWELS = "aeiou"
_ANY_FORM = "~"  # after an English word: the phrase also matches the word's other verb forms


class Hit(NamedTuple):
    """A lexicon phrase found in a normalized message: text[start:end]."""

    start: int
    end: int
    kind: str  # the list it comes from, e.g. "medical_acute", "negation"
    term: str  # the phrase as the lexicon writes it
    written: str = ""  # how the message wrote it, when that was a misspelling or a sound-alike


class _Entry(NamedTuple):
    whole_left: bool  # an English word: must not continue to the left
    whole_right: bool
    kind: str
    term: str
    written: str


def _lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            yield line


def _phrase(raw: str) -> tuple[str, bool, bool]:
    """Normalized phrase, and whether it must stand as a whole word on each side."""
    left_open, right_open = raw.startswith("*"), raw.endswith("*")
    phrase = normalize(raw.strip("*"))
    wordy = _is_word_char
    return (
        phrase,
        bool(phrase) and wordy(phrase[0]) and not left_open,
        bool(phrase) and wordy(phrase[-1]) and not right_open,
    )


def _is_word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _packaged() -> dict[str, str]:
    folder = resources.files("routing").joinpath("lexicons")
    return {
        item.name.removesuffix(".txt"): item.read_text(encoding="utf-8")
        for item in folder.iterdir()
        if item.name.endswith(".txt")
    }


def _with_extra(texts: dict[str, str], extra_dir: str | PathLike[str] | None) -> dict[str, str]:
    if extra_dir is None:
        return texts
    merged = dict(texts)
    for path in sorted(Path(extra_dir).glob("*.txt")):
        name = path.name.removesuffix(".txt")
        if name in merged:
            merged[name] += "\n" + path.read_text(encoding="utf-8")
    return merged


@dataclass(frozen=True)
class Lexicon:
    automaton: ahocorasick.Automaton
    sounds: SoundIndex
    by_sound: dict[str, tuple[tuple[str, str], ...]]  # phrase → (kind, term) of its lists
    hints: dict[str, Category]
    kinds: frozenset[str] = field(default_factory=frozenset)
    weak: ahocorasick.Automaton | None = None

    def scan(self, text: str) -> list[Hit]:
        """Every phrase in the normalized text, minus those inside a longer phrase."""
        hits = _matches(self.automaton, text)
        for start, end, phrase, written in self.sounds.find(text):
            for kind, term in self.by_sound.get(phrase, ()):
                hits.append(Hit(start, end, kind, term, written))
        return outermost(hits)

    def weak_scan(self, text: str) -> list[Hit]:
        """The weak signals (weak_*.txt) in the normalized text; weak_not phrases hide those inside them."""
        if self.weak is None:
            return []
        return [hit for hit in outermost(_matches(self.weak, text)) if hit.kind != "weak_not"]

    def hint_category(self, hint: str | None) -> Category | None:
        """The category a form's category_hint stands for, if we know the hint."""
        if not hint:
            return None
        key = normalize(hint)
        if key in self.hints:
            return self.hints[key]
        for word, category in self.hints.items():
            if word in key:
                return category
        return None


def _matches(automaton: ahocorasick.Automaton, text: str) -> list[Hit]:
    hits: list[Hit] = []
    size = len(text)
    new = tuple.__new__  # a Hit without NamedTuple's slower constructor: this loop is the hot path
    for end, (length, english, entries) in automaton.iter(text):
        start = end - length + 1
        if english:
            left_ok = start == 0 or not _is_word_char(text[start - 1])
            right_ok = end + 1 >= size or not _is_word_char(text[end + 1])
            for entry in entries:
                if (left_ok or not entry.whole_left) and (right_ok or not entry.whole_right):
                    hits.append(new(Hit, (start, end + 1, entry.kind, entry.term, entry.written)))
        else:
            for entry in entries:
                hits.append(new(Hit, (start, end + 1, entry.kind, entry.term, entry.written)))
    return hits


def _automaton(table: dict[str, list[_Entry]]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for phrase, entries in table.items():
        english = any(e.whole_left or e.whole_right for e in entries)
        automaton.add_word(phrase, (len(phrase), english, tuple(entries)))
    if table:
        automaton.make_automaton()
    return automaton


def _table(texts: dict[str, str], kinds: frozenset[str]) -> dict[str, list[_Entry]]:
    table: dict[str, list[_Entry]] = {}
    for kind in sorted(kinds):
        for line in _lines(texts[kind]):
            for raw in _forms(line):
                phrase, left, right = _phrase(raw)
                if phrase and not any(e.kind == kind and not e.written for e in table.get(phrase, ())):
                    table.setdefault(phrase, []).append(_Entry(left, right, kind, raw.strip("*"), ""))
    return table


def outermost(hits: list[Hit]) -> list[Hit]:
    """Drop phrases lying inside a longer one (不 in 不舒服, 烧 in 不烧了, 接 in 直接), and a
    phrase overlapping an earlier one of the same list (烧了 after 发烧 in 发烧了)."""
    hits.sort(key=lambda h: (h.start, -h.end))
    outer: list[Hit] = []
    cover_start = cover_end = -1
    for hit in hits:
        if hit.end < cover_end or (hit.end == cover_end and hit.start > cover_start):
            continue
        if outer and outer[-1][:4] == hit[:4]:
            continue  # the same phrase found twice (exactly and by sound)
        outer.append(hit)
        if hit.end > cover_end:
            cover_start, cover_end = hit.start, hit.end
    kept: list[Hit] = []
    last_end: dict[str, int] = {}
    for hit in outer:
        if last_end.get(hit.kind, -1) <= hit.start:
            kept.append(hit)
            last_end[hit.kind] = hit.end
    return kept


def verb_forms(word: str) -> tuple[str, ...]:
    """-s, -ed and -ing forms of an English verb (regular spelling rules; irregular ones are listed)."""
    if len(word) < 3 or not word.isalpha() or word.endswith(("ed", "ing", "s")):
        return ()
    if word.endswith("e") and not word.endswith("ee"):
        return (word + "s", word + "d", word[:-1] + "ing")
    if word.endswith("y") and word[-2] not in _VOWELS:
        return (word[:-1] + "ies", word[:-1] + "ied", word + "ing")
    third = word + ("es" if word.endswith(("sh", "ch", "x", "z", "o")) else "s")
    short = (
        len(word) <= 4 and word[-1] not in _VOWELS + "wxy" and word[-2] in _VOWELS and word[-3] not in _VOWELS
    )
    stem = word + word[-1] if short else word  # cut → cutting, stab → stabbed
    return (third, stem + "ed", stem + "ing")


def _forms(raw: str) -> list[str]:
    """`kill~ herself` → kill herself, kills herself, killed herself, killing herself."""
    if _ANY_FORM not in raw:
        return [raw]
    head, _, tail = raw.partition(_ANY_FORM)
    words = head.split(" ")
    base = head + tail
    stem = words[-1].lower()
    return [base] + [" ".join((*words[:-1], form)) + tail for form in verb_forms(stem)]


def _build(texts: dict[str, str]) -> Lexicon:
    kinds = frozenset(name for name in texts if name not in _SPECIAL and not name.startswith(_WEAK))
    table = _table(texts, kinds)
    weak = _table(texts, frozenset(name for name in texts if name.startswith(_WEAK)))
    for raw in _lines(texts.get("typos", "")):
        wrong, _, meant = (part.strip() for part in raw.partition("="))
        phrase, left, right_whole = _phrase(wrong)
        for entry in table.get(_phrase(meant)[0], ()):
            if phrase and not entry.written:
                table.setdefault(phrase, []).append(_Entry(left, right_whole, entry.kind, entry.term, wrong))
    by_sound: dict[str, tuple[tuple[str, str], ...]] = {}
    for raw in _lines(texts.get("sound_alike", "")):
        phrase = _phrase(raw)[0]
        by_sound[phrase] = tuple((e.kind, e.term) for e in table.get(phrase, ()) if not e.written)
    hints: dict[str, Category] = {}
    for raw in _lines(texts.get("hints", "")):
        word, _, label = (part.strip() for part in raw.partition("="))
        if word and label in Category.__members__:
            hints[normalize(word)] = Category(label)
    automaton = _automaton(table)
    sounds = SoundIndex(
        (p for p, e in by_sound.items() if e), (_phrase(raw)[0] for raw in _lines(texts.get("not_typos", "")))
    )
    return Lexicon(automaton, sounds, by_sound, hints, kinds, _automaton(weak) if weak else None)


def load_lexicon(extra_dir: str | PathLike[str] | None = None) -> Lexicon:
    """Our lexicons, plus a school's own lines from files of the same names in extra_dir."""
    return _build(_with_extra(_packaged(), extra_dir))


@cache
def default_lexicon() -> Lexicon:
    """Loaded once per process: classification never reads a file."""
    return load_lexicon()
