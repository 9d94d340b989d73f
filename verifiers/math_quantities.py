"""Answers that are not plain numbers but are stated in prose: ratios, times of day, dates, durations.

``parse_quantity`` reads a whole (normalized) answer as one of these; ``quantity_spans`` finds
them in a sentence, so that the fallback reader takes ``3:45 PM`` or ``3 hours and 20 minutes``
whole instead of its last number. ``quantity_equivalent`` says when a prediction states a gold
quantity. Every pattern is anchored or linear; nothing here can hang on adversarial text.

- ``Ratio``: ``3:2``, ``1 : 2 : 3`` (equal when proportional; a two-part ratio is also its
  quotient, so ``3:2`` matches ``\\frac{3}{2}``).
- ``ClockTime``: ``3:45 PM``, ``15:45``, ``10:30 a.m.``, ``5 PM``, ``4:30`` (a two-digit minute
  field makes ``h:mm`` a time, not a ratio). Without AM/PM the half of the day is open.
- ``Date``: ``March 15``, ``15th of March``, ``March 15, 2024``, ``2024-03-15``.
- ``Duration``: ``3 hours 20 minutes``, ``3 h 20 min``, ``200 minutes``, ``2\\frac{1}{2} hours``;
  equal when the total time is, and a bare number matches the total in a unit the answer used
  (``1 hour 30 minutes`` answers ``90`` and ``1.5``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Ratio:
    parts: tuple[Fraction, ...]


@dataclass(frozen=True)
class ClockTime:
    minutes: int  # since midnight, 0..1439
    meridiem: bool  # the half of the day is stated (AM/PM, or a 24-hour time such as 15:45)


@dataclass(frozen=True)
class Date:
    month: int
    day: int
    year: int | None


@dataclass(frozen=True)
class Duration:
    seconds: Fraction
    units: tuple[int, ...]  # seconds per unit, for each unit the answer named


Quantity = Ratio | ClockTime | Date | Duration

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH_NAMES = {name: i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_NAMES.update({name[:3]: i + 1 for i, name in enumerate(_MONTHS)})
_MONTH_NAMES["sept"] = 9
_MONTH = r"(?P<month>January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
_WEEKDAY = r"(?:(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday),?\s+)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_DATES = [
    re.compile(_WEEKDAY + _MONTH + r"\s+" + _DAY + _YEAR + r"(?![\w:])"),
    re.compile(_WEEKDAY + r"(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MONTH + _YEAR + r"(?![\w:])"),
    re.compile(r"(?<![\d-])(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?![\d-])"),
]
_MERIDIEM = r"(?P<meridiem>[ap])\.?\s?m\b\.?"
_TIMES = [
    re.compile(r"(?<![\d.:/])(?P<hour>\d{1,2}):(?P<minute>\d{2})(?:\s*" + _MERIDIEM + r")?(?![\d:])", re.I),
    re.compile(r"(?<![\d.:/])(?P<hour>\d{1,2})\s*" + _MERIDIEM, re.I),
    re.compile(r"(?<![\w])(?P<word>noon|midnight)(?![\w])", re.I),
    re.compile(r"(?<![\d.:/])(?P<hour>\d{1,2})\s*o'?clock\b", re.I),
]
_RATIO = re.compile(r"(?<![\d.:])\d+(?:\.\d+)?(?:\s*:\s*\d+(?:\.\d+)?)+(?![\d.:]*\d)")
_UNIT_SECONDS = {
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1),
    **dict.fromkeys(["min", "mins", "minute", "minutes"], 60),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], 3600),
    **dict.fromkeys(["day", "days"], 86400),
    **dict.fromkeys(["wk", "wks", "week", "weeks"], 604800),
}
_AMOUNT = r"(?:\d+\s*\\frac\{\d+\}\{\d+\}|\\frac\{\d+\}\{\d+\}|\d+/\d+|\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|wks?|s|h|min)(?![A-Za-z])"
_DURATION_PART = re.compile(r"(?P<amount>" + _AMOUNT + r")\s*(?P<unit>" + _UNIT + r")\.?", re.I)
_DURATION = re.compile(
    r"(?<![\w.\\/])" + _AMOUNT + r"\s*" + _UNIT + r"\.?(?:\s*(?:,\s*)?(?:and\s+)?" + _AMOUNT + r"\s*" + _UNIT + r"\.?)*",
    re.I,
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textrm|mbox)\s*\{([^{}]*)\}")


def _plain(s: str) -> str:
    for _ in range(3):
        s = _TEXT_WRAPPER.sub(lambda m: " " + m.group(1) + " ", s)
    return " ".join(s.replace("\\,", " ").replace("~", " ").split())


def parse_quantity(text: str) -> Quantity | None:
    """``text`` (a whole normalized answer) as a ratio, time of day, date or duration; else None."""
    s = _plain(text).rstrip(".").strip()
    if not s or len(s) > 80 or not any(c.isdigit() for c in s) and "noon" not in s.lower() and "midnight" not in s.lower():
        return None
    for pattern in _TIMES:
        m = pattern.fullmatch(s)
        if m:
            return _clock_time(m)
    for pattern in _DATES:
        m = pattern.fullmatch(s)
        if m:
            return _date(m)
    if _RATIO.fullmatch(s):
        parts = tuple(Fraction(p.strip()) for p in s.split(":"))
        return Ratio(parts) if any(parts) else None
    if _DURATION.fullmatch(s):
        return _duration(s)
    return None


def quantity_spans(text: str) -> list[tuple[int, int]]:
    """Where times of day, dates, durations and ratios are in a sentence (possibly overlapping)."""
    spans = []
    for pattern in (*_TIMES, *_DATES, _RATIO, _DURATION):
        spans += [m.span() for m in pattern.finditer(text)]
    return spans


def _clock_time(m: re.Match) -> ClockTime | None:
    groups = m.groupdict()
    if groups.get("word"):
        return ClockTime(720 if groups["word"].lower() == "noon" else 0, True)
    hour, minute = int(groups["hour"]), int(groups.get("minute") or 0)
    meridiem = (groups.get("meridiem") or "").lower()
    if minute > 59:
        return None
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)
        return ClockTime(hour * 60 + minute, True)
    if hour > 23:
        return None
    return ClockTime(hour * 60 + minute, hour >= 13 or hour == 0)


def _date(m: re.Match) -> Date | None:
    month = m.group("month")
    month = int(month) if month.isdigit() else _MONTH_NAMES[month.lower().rstrip(".")]
    day, year = int(m.group("day")), m.group("year")
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return Date(month, day, int(year) if year else None)


def _amount(s: str) -> Fraction:
    s = s.replace(" ", "")
    mixed = re.fullmatch(r"(\d*)\\frac\{(\d+)\}\{(\d+)\}", s)
    if mixed:
        return Fraction(int(mixed.group(1) or 0)) + Fraction(int(mixed.group(2)), int(mixed.group(3)))
    return Fraction(s)


def _duration(s: str) -> Duration | None:
    total, units = Fraction(0), []
    for m in _DURATION_PART.finditer(s):
        unit = _UNIT_SECONDS[m.group("unit").lower()]
        try:
            total += _amount(m.group("amount")) * unit
        except (ValueError, ZeroDivisionError):
            return None
        if unit in units:
            return None  # "3 hours 2 hours" is not a duration
        units.append(unit)
    return Duration(total, tuple(units)) if units else None


# ---------------------------------------------------------------- equivalence


def quantity_equivalent(pred: object, gold: Quantity, pred_number: Fraction | None) -> bool:
    """Whether ``pred`` (a quantity, or a plain number given as ``pred_number``) states the gold quantity."""
    if isinstance(gold, Ratio):
        if isinstance(pred, Ratio):
            return _proportional(pred.parts, gold.parts)
        return pred_number is not None and len(gold.parts) == 2 and gold.parts[1] != 0 and (
            pred_number == gold.parts[0] / gold.parts[1]
        )
    if isinstance(gold, ClockTime):
        if not isinstance(pred, ClockTime):
            return False
        if pred.meridiem and gold.meridiem:
            return pred.minutes == gold.minutes
        return pred.minutes % 720 == gold.minutes % 720
    if isinstance(gold, Date):
        if not isinstance(pred, Date):
            return False
        same_year = pred.year is None or gold.year is None or pred.year == gold.year
        return (pred.month, pred.day) == (gold.month, gold.day) and same_year
    if isinstance(gold, Duration):
        if isinstance(pred, Duration):
            return pred.seconds == gold.seconds
        if isinstance(pred, ClockTime) and not pred.meridiem:  # "1:30" for a duration is h:mm
            return pred.minutes * 60 == gold.seconds
        return pred_number is not None and any(pred_number * unit == gold.seconds for unit in gold.units)
    return False


def number_states_quantity(number: Fraction, pred: Quantity) -> bool:
    """A gold plain number against a predicted quantity: a duration in one of its own units, a ratio's quotient."""
    if isinstance(pred, Duration):
        return any(pred.seconds == number * unit for unit in pred.units)
    if isinstance(pred, Ratio) and len(pred.parts) == 2 and pred.parts[1] != 0:
        return pred.parts[0] / pred.parts[1] == number
    return False


def _proportional(a: tuple[Fraction, ...], b: tuple[Fraction, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(x * b[0] == y * a[0] for x, y in zip(a, b)) and any(a) and any(b)
