"""Phrases written with characters that sound alike: 法烧 for 发烧, 头腾 for 头疼.

Voice input and pinyin keyboards replace a character by another with the same
sound. Each character is mapped to one code for its toneless pinyin, folded the
way pinyin keyboards forgive (zh/z, ch/c, sh/s, n/l, -ng/-n), so a message and
a phrase that sound alike have the same code string, and one Aho-Corasick pass
over the message's codes finds them. Codes line up one to one with the
message's characters, so a match gives back the written span.
"""

from __future__ import annotations

from collections.abc import Iterable

import ahocorasick
from pypinyin import Style, lazy_pinyin

_FILLER = "\x00"  # any character whose sound no phrase uses
_FIRST_CODE = 0xE000  # private-use characters: one per syllable


def fold(syllable: str) -> str:
    """Pinyin as a keyboard forgives it: zh/z, ch/c, sh/s, n/l and -ng/-n sound alike."""
    if syllable[:2] in ("zh", "ch", "sh"):
        syllable = syllable[0] + syllable[2:]
    elif syllable.startswith("n"):
        syllable = "l" + syllable[1:]
    if syllable.endswith(("ang", "eng", "ing")):
        syllable = syllable[:-1]
    return syllable


def _syllable(char: str) -> str | None:
    if not ("\u3400" <= char <= "\u9fff"):
        return None
    reading = lazy_pinyin(char, style=Style.NORMAL, errors="ignore")
    return fold(reading[0]) if reading else None


class _Codes(dict[int, str]):
    """Character (as str.translate passes it) → code of its sound; filled on first sight."""

    def __init__(self, syllables: dict[str, str]) -> None:
        super().__init__()
        self._syllables = syllables

    def __missing__(self, key: int) -> str:
        syllable = _syllable(chr(key))
        code = self._syllables.get(syllable, _FILLER) if syllable else _FILLER
        self[key] = code
        return code


class SoundIndex:
    def __init__(self, phrases: Iterable[str], not_typos: Iterable[str]) -> None:
        syllables: dict[str, str] = {}
        keyed: dict[str, str] = {}
        for phrase in phrases:
            sounds = [_syllable(c) for c in phrase]
            if len(phrase) < 2 or any(s is None for s in sounds):
                continue  # one character alone sounds like too many words
            key = "".join(syllables.setdefault(s, chr(_FIRST_CODE + len(syllables))) for s in sounds if s)
            keyed.setdefault(key, phrase)
        self._codes = _Codes(syllables)
        self._not_typos = frozenset(not_typos)
        self._automaton = ahocorasick.Automaton()
        for key, phrase in keyed.items():
            self._automaton.add_word(key, (len(key), phrase))
        self._empty = not keyed
        if not self._empty:
            self._automaton.make_automaton()

    def find(self, text: str) -> list[tuple[int, int, str, str]]:
        """(start, end, phrase, as written) for each phrase written with sound-alike characters."""
        if self._empty or text.isascii():
            return []
        found = []
        for end, (length, phrase) in self._automaton.iter(text.translate(self._codes)):
            start = end - length + 1
            written = text[start : end + 1]
            # A slip changes a character or two, not all of them: 法烧, 头腾 (not 果明 for 过敏).
            same = sum(a == b for a, b in zip(written, phrase, strict=True))
            if 0 < same < len(phrase) and written not in self._not_typos:
                found.append((start, end + 1, phrase, written))
        return found
