"""Durations as schools write them: "45s", "2m", "4h", "1d".

A "d" is a school day when it is applied to a school-time clock (P2/P3),
a calendar day otherwise; the unit is kept so the calendar can decide.
"""

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # one of s, m, h, d

    @property
    def seconds(self) -> int:
        return self.amount * _SECONDS[self.unit]

    @property
    def is_days(self) -> bool:
        return self.unit == "d"

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse "45s", "2m", "4h" or "1d"; raise ValueError with the accepted forms otherwise."""
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"bad duration {text!r}: write a whole number and a unit, like 45s, 2m, 4h or 1d")
    amount = int(match.group(1))
    if amount <= 0:
        raise ValueError(f"bad duration {text!r}: must be more than zero")
    return Duration(amount, match.group(2))
