"""Math answer verifier (``math``): is the final answer of a completion the gold answer?

1. Extraction (``extract_answer``), in the part after a closed ``<think>`` block if there
   is one: the last ``\\boxed{}``/``\\fbox{}`` (nested braces kept); without a box, the
   text after the last answer phrase (``The answer is``, ``Final Answer:``, ``Answer:``)
   or GSM8K's ``####``; without either, the last formula (``$...$``, ``\\(...\\)``), or
   the last number when the gold is a plain number. A multiple-choice gold also accepts a
   closing line that is only the letter; a text gold, a closing ``... is Evelyn.``
2. Normalization (``normalize``): unicode math, delimiters, spacing, ``\\dfrac``,
   thousands separators; units, currency, degrees and percent signs go while parsing.
3. Equivalence (``answers_equivalent``): exact, with sympy, for numbers, radicals,
   expressions, equations (``x = 3`` states ``3``), intervals (open and closed differ),
   sets (any order), tuples (in order), matrices, option letters and text. The number
   rules (one narrow rule for long decimals, none for integers) are in
   ``verifiers.math_compare``.

Hedging does not pay. When the gold is a single value, these are incorrect: several
boxes with different values; a value offered next to the box (``4 or $\\boxed{5}$``); a
final answer listing several values (``4 or 5``, ``either 4 or 5``, ``4, 5, or 6``,
``\\pm 2``, ``\\{5, 6\\}``) or a range (``[4, 6]``, ``x > 4``). A gold with several values
(``1, 2``, ``\\{1, 2\\}``, ``(1, 2)``) is compared as a whole, one box per value allowed.

LaTeX is parsed with latex2sympy2_extended (the parser under math-verify). math-verify's
own ``parse``/``verify`` are not used: they accept a match with any of several extracted
candidates (so ``$\\boxed{4}$ or $\\boxed{5}$`` passes for 5), and their rounding to six
decimals makes ``0.1000001`` equal ``0.1``.

Everything here is a plain, deterministic function of its inputs: no ``signal.alarm``,
no threads, no ``eval``. The hard per-sample deadline is enforced outside, by the sandbox
worker that runs the verifier; a killed worker is an ``unverifiable`` verdict. Inputs that
would make the parser or sympy run away are refused up front (``math_latex.too_costly``).
"""

from __future__ import annotations

import math as _float_math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Mapping

from verifiers.math_compare import distinct_values, equivalent, same_answer
from verifiers.math_extract import (
    anchored_answer,
    box_alternative,
    box_spans,
    choice_line,
    closing_statement,
    final_section,
    last_math,
    last_number,
    last_number_span,
)
from verifiers.math_normalize import normalize, normalize_text, number_word_value, unicode_to_latex, unwrap_text
from verifiers.math_values import MAX_ITEMS, Collection, Intervals, Scalar, Text, Value, parse_value
from verifiers.registry import register
from verifiers.types import Verdict

__all__ = [
    "Extraction",
    "Gold",
    "answers_equivalent",
    "extract_answer",
    "judge",
    "math_verifier",
    "normalize",
    "parse_gold",
    "read_choice",
]

ExtractionSource = Literal[
    "boxed", "anchor", "gsm8k", "last_formula", "last_number", "choice_line", "closing_statement", "none"
]


@dataclass(frozen=True)
class Gold:
    """A parsed gold answer: an option letter (``choice``) or a parsed ``value``."""

    raw: str
    text: str  # normalized
    value: Value | None
    choice: str | None = None

    @property
    def several(self) -> bool:
        """The gold has several values (a set, tuple or list), so a list in the answer is not a hedge."""
        return isinstance(self.value, Collection) and len(self.value.items) > 1

    @property
    def plain_number(self) -> bool:
        return isinstance(self.value, Scalar) and self.value.expr.is_Rational is True


@dataclass(frozen=True)
class Extraction:
    """The final answer found in a completion (``answer`` is None when there is none, and ``reason`` says why)."""

    answer: str | None
    source: ExtractionSource
    reason: str = ""


# ---------------------------------------------------------------- gold

MAX_ANSWER_CHARS = 2000  # a final answer, not a derivation
_CHOICE_GOLD = re.compile(r"^\(?([A-Z])\)?$")


def parse_gold(answer: Any) -> Gold | None:
    """Parse ``example["answer"]`` (str, int or float); None when it is not a well-formed answer."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return None
    if isinstance(answer, float) and not _float_math.isfinite(answer):
        return None
    return _parse_gold_text(answer if isinstance(answer, str) else repr(answer))


@lru_cache(maxsize=1024)
def _parse_gold_text(raw: str) -> Gold | None:
    if "####" in raw:  # a whole GSM8K solution was given as the answer
        raw = raw.rpartition("####")[2]
    text = normalize(raw)
    if not text:
        return None
    letter = _CHOICE_GOLD.match(unwrap_text(text).replace(" ", ""))
    if letter:
        return Gold(raw, text, None, letter.group(1))
    value = parse_value(text)
    return Gold(raw, text, value) if value is not None else None


# ---------------------------------------------------------------- extraction


def extract_answer(completion: str, gold: Any = None) -> Extraction:
    """The final answer of ``completion``.

    ``gold`` (raw, or a parsed ``Gold``) decides how several boxes and the fallbacks are read.
    """
    if gold is not None and not isinstance(gold, Gold):
        gold = parse_gold(gold)
    section = unicode_to_latex(final_section(completion))
    spans, unclosed = box_spans(section)
    if unclosed:
        return Extraction(None, "boxed", "the last \\boxed{} never closes")
    if spans:
        extraction = _from_boxes([section[a:b] for _, _, a, b in spans], gold)
        alternative = box_alternative(section, spans[-1][0], spans[-1][1])
        if extraction.answer is not None and alternative and (gold is None or not gold.several):
            if not _same_text_answer(alternative, extraction.answer):
                reason = f"the boxed answer comes with an alternative: or {_short(alternative)}"
                return Extraction(None, "boxed", reason)
        return extraction
    answer, source = anchored_answer(section)
    number_expected = gold is None or gold.plain_number
    if answer is not None and not (number_expected and _has_no_number(answer)):
        return Extraction(answer, source)  # (a number is expected: "the answer is as follows" falls through)
    if gold is not None and gold.choice:
        line = choice_line(section)
        if line is not None:
            return Extraction(line, "choice_line")
    formula, start, end = last_math(section)
    if number_expected:
        number_start, number_end = last_number_span(section)
        if formula is not None and start <= number_start and number_end <= end:
            return Extraction(formula, "last_formula")  # "$\\dfrac{1}{2}$", "$x = 5$": the whole formula
        number, reason = last_number(section)
        return Extraction(number, "last_number", reason)
    if formula is not None:
        return Extraction(formula, "last_formula")
    if gold is not None and isinstance(gold.value, Text):
        statement = closing_statement(section)
        if statement is not None:
            return Extraction(statement, "closing_statement")
    return Extraction(None, "none", "no final answer found")


def _same_text_answer(a: str, b: str) -> bool:
    """Two answer strings state the same value (``\\frac{3}{8}`` and ``37.5\\%``)."""
    va, vb = parse_value(normalize(a)), parse_value(normalize(b))
    return va is not None and vb is not None and same_answer(va, vb)


def _has_no_number(answer: str) -> bool:
    return not re.search(r"\d", normalize(answer)) and all(number_word_value(w) is None for w in answer.split())


def _from_boxes(boxes: list[str], gold: Gold | None) -> Extraction:
    if not boxes[-1].strip():
        return Extraction(None, "boxed", "the last \\boxed{} is empty")
    boxes = [b for b in boxes if b.strip()]
    keys: dict[str, str] = {}  # normalized -> raw, in order of first appearance
    for b in boxes:
        keys.setdefault(normalize(b), b)
    if len(keys) == 1:
        return Extraction(boxes[-1], "boxed")
    if len(keys) > MAX_ITEMS:
        return Extraction(None, "boxed", f"boxed {len(keys)} different answers")
    if gold is not None and gold.choice:
        letters = {read_choice(b) for b in boxes}
        if len(letters) == 1 and None not in letters:
            return Extraction(boxes[-1], "boxed")
        return Extraction(None, "boxed", f"boxed {len(keys)} different answers")
    parsed = {k: parse_value(k) for k in keys}
    last = parsed[normalize(boxes[-1])]
    if last is not None and all(v is not None and same_answer(v, last) for v in parsed.values()):
        return Extraction(boxes[-1], "boxed")
    if gold is not None and gold.several and None not in parsed.values():
        if isinstance(last, Collection) and all(
            v is last or any(same_answer(v, item) for item in last.items) for v in parsed.values()
        ):
            return Extraction(boxes[-1], "boxed")  # the parts, then the whole answer
        if not any(isinstance(v, Collection) for v in parsed.values()):
            return Extraction(", ".join(keys.values()), "boxed")  # one box per value
    return Extraction(None, "boxed", f"boxed {len(keys)} different answers")


# ---------------------------------------------------------------- judging

_CHOICE_ANSWER = re.compile(
    r"^(?:(?:the\s+)?(?:option|choice|answer)\s*:?\s*)?\(?([A-Za-z])\)?(?=$|[.:)\]]|\s)(.*)$", re.I | re.S
)
_OTHER_OPTION = re.compile(r"\b(?:or|and)\b|^\s*[,/&]\s*\(?[A-Z]\)?(?![A-Za-z])|\([A-Z]\)")


def read_choice(text: str) -> str | None:
    """The option letter an answer names; None for ``A or C``.

    ``C``, ``(C)``, ``\\text{(C)}``, ``\\textbf{(C)}``, ``C) 42``, ``(C) 42``, ``Option C`` all name C.
    """
    s = unwrap_text(normalize(text)).strip().strip("*").strip()
    m = _CHOICE_ANSWER.match(s)
    if not m:
        return None
    letter, rest = m.group(1), m.group(2)
    if letter.islower() and rest.strip():
        return None
    if _OTHER_OPTION.search(rest):
        return None
    return letter.upper()


def judge(answer: str, gold: Gold) -> tuple[bool, str]:
    """Whether the extracted ``answer`` states ``gold``, with a short reason."""
    correct, reason, _ = _judge(answer, gold)
    return correct, reason


def _judge(answer: str, gold: Gold) -> tuple[bool, str, str]:
    """(correct, reason, canonical form of the answer for majority voting)."""
    if gold.choice:
        letter = read_choice(answer)
        if letter is None:
            return False, f"expected option {gold.choice}, got {_short(answer)!r}", normalize(answer)
        if letter != gold.choice:
            return False, f"expected option {gold.choice}, got {letter}", letter
        return True, f"option {letter}", letter
    text = normalize(answer)
    if len(text) > MAX_ANSWER_CHARS:
        return False, f"the answer is too long ({len(text)} characters)", _short(text)
    value = parse_value(text)
    if value is None:
        if isinstance(gold.value, Text) and normalize_text(text) == gold.value.text:
            return True, f"matches {_short(gold.text)!r}", gold.value.text
        return False, f"could not parse the answer {_short(text)!r}", text
    canonical = _canonical(value, text)
    if not gold.several:
        value, hedge = _single_value(value, gold)
        if hedge:
            return False, hedge, canonical
    if equivalent(value, gold.value):
        return True, f"matches {_short(gold.text)!r}", canonical
    return False, f"expected {_short(gold.text)}, got {_short(text)}", canonical


def _canonical(value: Value, text: str) -> str:
    """One spelling per value where that is cheap (``0.5``, ``\\frac{1}{2}`` -> ``1/2``), else the normalized text."""
    if isinstance(value, Scalar) and not value.percent and value.expr.is_number:
        return str(value.expr)
    if isinstance(value, Text):
        return value.text
    return text


def _single_value(value: Value, gold: Gold) -> tuple[Value, str]:
    """A list of answers where one is expected: fine if they all agree, a hedge otherwise."""
    if not isinstance(value, Collection):
        return value, ""
    if isinstance(gold.value, Intervals) and all(isinstance(i, Intervals) for i in value.items):
        return value, ""  # "x < -1 or x > 2" is one answer: a union
    if value.kind == "tuple" or isinstance(gold.value, Collection):
        return value, ""
    distinct = distinct_values(list(value.items), limit=1)
    if len(distinct) == 1:
        return distinct[0], ""
    return value, f"hedged between {len(value.items)} answers"


def _short(s: str, limit: int = 60) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def answers_equivalent(pred: str, gold: Any) -> bool:
    """Whether the final answer ``pred`` (already extracted) states the gold answer ``gold``."""
    parsed = gold if isinstance(gold, Gold) else parse_gold(gold)
    if parsed is None:
        raise ValueError(f"gold answer {gold!r} could not be parsed")
    return judge(pred, parsed)[0]


# Run once in each sandbox worker before it forks samples (``verifiers.isolated.warm_up``): builds the
# LaTeX grammar and fills sympy's caches, so that each sample's process starts warm.
_WARM_UP_CASES = [
    ("So the answer is $\\boxed{\\dfrac{3}{4}}$.", {"answer": "0.75"}),
    ("Thus $x = \\sqrt{2} + \\pi$, i.e. \\boxed{(1, 2]}.", {"answer": "(1,2]"}),
    ("The answer is \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", {"answer": "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"}),
    ("#### 1,234", {"answer": "1234"}),
    ("\\boxed{x^2 + 2x + 1}", {"answer": "(x+1)^2"}),
    ("The answer is (C).", {"answer": "C"}),
]


@register("math", isolated=True, timeout_s=5.0, warm_up_cases=_WARM_UP_CASES)  # sympy on model text: a sandboxed process per sample, killed at 5 s
def math_verifier(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Correct iff the final answer of ``completion`` is ``example['answer']`` (see the module doc)."""
    raw_gold = example.get("answer") if isinstance(example, Mapping) else None
    try:
        gold = parse_gold(raw_gold)
        if gold is None:
            return Verdict("unverifiable", 0.0, f"gold answer {_short(repr(raw_gold))} could not be parsed")
        extraction = extract_answer(completion or "", gold)
        if extraction.answer is None:
            return Verdict("incorrect", 0.0, extraction.reason or "no final answer found")
        correct, reason, canonical = _judge(extraction.answer, gold)
    except (Exception, RecursionError) as exc:  # a bug or a sympy failure is the verifier's, not the model's
        return Verdict("unverifiable", 0.0, f"verifier error: {exc!r}"[:200])
    reason = f"{reason} ({extraction.source})"
    if correct:
        return Verdict("correct", 1.0, reason, extracted=canonical)
    return Verdict("incorrect", 0.0, reason, extracted=canonical)
