"""One spelling for every message: the lexicons and the rules see only this form.

NFKC folds full-width digits and letters (３９．５ → 39.5, ℃ → °C); zero-width
characters and emoji variation selectors go; Traditional characters become
Simplified (OpenCC t2s); everything is lower case. Temperatures are read from
the normalized text in every form parents write them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import NamedTuple

import opencc

_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\ufe0e\ufe0f]")
_BLANKS = re.compile(r"\s{2,}|[\t\n\r\f\v\u3000]")


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    if not folded.isascii():
        folded = _t2s().convert(_INVISIBLE.sub("", folded))
    return _BLANKS.sub(" ", folded).strip().lower()


class Temperature(NamedTuple):
    start: int
    end: int
    celsius: float


FEVER_C = 37.3
HIGH_FEVER_C = 39.0

# A number, then perhaps a unit: 38.5 · 39度 · 39度5 · 39.2°c · 102°f · 101 f · 100 degrees
_NUMBER = re.compile(
    r"(?<![\d.])(\d{2,3}(?:\.\d{1,2})?)(?![\d])\s*"
    r"(°\s*c|°\s*f|°|摄氏度|华氏度|度\s*([1-9一二三四五六七八九半])?|degrees?\s*(?:celsius|fahrenheit|c|f)?|c|f)?(?![a-z])"
)
# 三十八度五 · 三十九度 · 四十度 · 三十八点五度
_CHINESE = re.compile(
    r"([三四])十([一二三四五六七八九]?)(?:点([一二三四五六七八九]))?度([一二三四五六七八九半])?"
)
_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")}
# Words that make a bare number (no unit) a body temperature.
_CONTEXT = re.compile(r"(烧|热|体温|温度|量|烫|fever|temp)")
_ANY_DIGIT = re.compile(r"\d")
_CLAUSE_BREAK = re.compile(r"[,，。;；!！?？\n]")
_BODY_C = (35.0, 43.0)
_BODY_F = (95.0, 109.0)


def _tenths(mark: str | None) -> float:
    if not mark:
        return 0.0
    if mark == "半":
        return 0.5
    return (_DIGITS.get(mark, 0) if not mark.isdigit() else int(mark)) / 10


def _read(value: float, unit: str, fraction: str | None, has_context: bool) -> float | None:
    unit = unit.replace(" ", "")
    if unit.endswith("f") or "华氏" in unit or "fahrenheit" in unit:
        return (value - 32) / 1.8 if _BODY_F[0] <= value <= _BODY_F[1] else None
    if unit.startswith("度"):
        value += _tenths(fraction)
    if unit:
        if _BODY_C[0] <= value <= _BODY_C[1]:
            return value
        if unit.startswith("degree") and _BODY_F[0] <= value <= _BODY_F[1]:
            return (value - 32) / 1.8
        return None
    if not has_context:
        return None
    if _BODY_C[0] <= value <= _BODY_C[1]:
        return value
    if _BODY_F[0] <= value <= _BODY_F[1]:
        return (value - 32) / 1.8
    return None


def temperatures(text: str) -> list[Temperature]:
    """Body temperatures written in the (normalized) text, in °C."""
    found: list[Temperature] = []
    if _ANY_DIGIT.search(text):
        for match in _NUMBER.finditer(text):
            # a bare number is a temperature only with a word of fever in its own clause
            before = _CLAUSE_BREAK.split(text[max(0, match.start() - 12) : match.start()])[-1]
            after = _CLAUSE_BREAK.split(text[match.end() : match.end() + 8])[0]
            context = bool(_CONTEXT.search(before) or _CONTEXT.search(after))
            celsius = _read(float(match.group(1)), match.group(2) or "", match.group(3), context)
            if celsius is not None:
                found.append(Temperature(match.start(), match.end(), round(celsius, 1)))
    if "十" in text:
        for match in _CHINESE.finditer(text):
            whole = _DIGITS[match.group(1)] * 10 + _DIGITS.get(match.group(2) or "零", 0)
            value = whole + _tenths(match.group(3) or match.group(4))
            if _BODY_C[0] <= value <= _BODY_C[1]:
                found.append(Temperature(match.start(), match.end(), value))
    return found
