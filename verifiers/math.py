"""Math answer verifier (``math``): is the final answer of a completion the gold answer?

1. Extraction (``extract_answer``), in the part after a closed ``<think>`` block if there
   is one. The answer is what the completion *states* as its answer: every ``\\boxed{}``/
   ``\\fbox{}`` (nested braces kept), and the text after every answer phrase (``The answer
   is``, ``Final Answer:``, a ``**Final Answer**`` heading, ``Answer:``) or GSM8K's ``####``;
   a phrase followed by a sentence (``Janet makes $18 every day.``) states the value that
   sentence states. All statements must agree, boxes and phrases alike; a box that names a
   value on the way (``a = \\boxed{3}``) does not count once a final statement follows it.
   Not statements: a negated one (``not \\boxed{5}``, ``The answer is not 14``), a question,
   a hypothetical or past one (``If ..., the answer would be 3``, ``At first I thought the
   answer is 12, but``), and one taken back after it (``The answer is 5. Wait, that's wrong``).
   Without any statement, the closing sentence is read (``verifiers.math_closing``): its last
   number (with the time, date, duration or ratio around it) or formula, only if it states a
   result (no question, negation, hedge, code block, table, filler or repetition loop after
   it). An empty ``The answer is:`` or ``####`` is no answer. A multiple-choice gold also
   accepts a closing line that is only the letter; a text gold, a closing ``... is Evelyn.``
   A completion cut at max_new_tokens (``finish_reason="length"``) is correct only with an
   explicit statement, never through the closing sentence, and not inside an unclosed
   ``<think>`` block.
2. Normalization (``normalize``): unicode math (sub- and superscripts as ``_{}``/``^{}``),
   delimiters, spacing, ``\\dfrac``, thousands separators; units, currency, degrees and
   percent signs go while parsing, never words that change the value (``at least 7``).
3. Equivalence (``answers_equivalent``): exact, with sympy, for numbers, radicals,
   expressions, equations (``x = 3`` states ``3``), intervals (open and closed differ),
   sets (any order), tuples (in order), matrices, option letters, text, numbers in a base
   (``1011_2``), ratios, times of day, dates and durations (``verifiers.math_quantities``).
   Numbers too large to evaluate (``2^{2^{30}}``, ``1000000!``) are decided exactly by
   ``verifiers.math_bignum``. The number rules (one narrow rule for long decimals, none for
   integers) are in ``verifiers.math_compare``.

Hedging does not pay. When the gold is a single value, these are incorrect: several
boxes with different values; a value offered next to the box (``4 or $\\boxed{5}$``); a
final answer listing several values (``4 or 5``, ``either 4 or 5``, ``4, 5, or 6``,
``\\pm 2``, ``\\{5, 6\\}``) or a range (``[4, 6]``, ``x > 4``); several statements with
different values. A gold with several values (``1, 2``, ``\\{1, 2\\}``, ``(1, 2)``) is
compared as a whole, one statement per value allowed.

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

from verifiers import math_bignum
from verifiers.math_compare import distinct_values, equivalent, same_answer
from verifiers.math_closing import closing_sentence, read_sentence, retraction
from verifiers.math_extract import (
    Statement,
    answer_statements,
    box_alternative,
    choice_line,
    closing_statement,
    final_section,
)
from verifiers.math_normalize import normalize, normalize_text, unicode_to_latex, unwrap_text
from verifiers.math_quantities import ClockTime, Date, Duration, Ratio
from verifiers.math_values import MAX_ITEMS, Collection, Equation, Intervals, Scalar, Text, Value, parse_value
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

    @property
    def number_like(self) -> bool:
        """A number, or a quantity stated with numbers (time of day, date, duration, ratio): the
        fallback reads the last number of the closing sentence (and the quantity around it)."""
        return self.plain_number or isinstance(self.value, (ClockTime, Date, Duration, Ratio))


@dataclass(frozen=True)
class Extraction:
    """The final answer found in a completion (``answer`` is None when there is none, and ``reason`` says why)."""

    answer: str | None
    source: ExtractionSource
    reason: str = ""


# ---------------------------------------------------------------- gold

FINISH_REASONS = ("stop", "length")
MAX_ANSWER_CHARS = 2000  # a final answer, not a derivation
_LONG_NUMBER = re.compile(r"[-+]?\d{1,200000}(?:\.\d+)?")  # except one long integer (a 5000-digit answer)
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


def extract_answer(completion: str, gold: Any = None, *, finish_reason: str = "stop") -> Extraction:
    """The final answer of ``completion``.

    ``gold`` (raw, or a parsed ``Gold``) decides how several statements and the fallback are
    read. ``finish_reason="length"`` (cut at max_new_tokens): only an explicit statement (a box,
    an answer phrase, ``####``) counts, never the fallback.
    """
    if gold is not None and not isinstance(gold, Gold):
        gold = parse_gold(gold)
    truncated = finish_reason == "length"
    section = final_section(completion, truncated)
    if section is None:
        return Extraction(None, "none", "cut at max_new_tokens inside the <think> block: no final answer")
    section = unicode_to_latex(section)
    found = answer_statements(section, truncated)
    if found.unclosed_box:
        return Extraction(None, "boxed", "the last \\boxed{} never closes")
    statements = _final_statements(found.items)
    if statements:
        extraction = _from_statements(section, statements, gold)
        if extraction is not None:
            return extraction
    if truncated:
        return Extraction(None, "none", "cut at max_new_tokens before stating a final answer")
    if found.silenced:
        return Extraction(None, "none", found.silenced)
    return _fallback(section, gold)


def _final_statements(items: tuple[Statement, ...]) -> list[Statement]:
    """Drop the boxes that name a value on the way (``a = \\boxed{3}``) when a final statement follows."""
    last_final = max((i for i, st in enumerate(items) if not st.intermediate), default=-1)
    return [st for i, st in enumerate(items) if not (st.intermediate and i < last_final)]


def _from_statements(section: str, statements: list[Statement], gold: Gold | None) -> Extraction | None:
    """One answer from every statement of it: they must agree (one rule for boxes and phrases); None
    when no statement holds a value (``The answer is as follows:``), so the fallback may look."""
    answers: list[tuple[Statement, str]] = []
    for st in statements:
        if st.kind == "boxed":
            if not st.text.strip():
                if st is statements[-1]:
                    return Extraction(None, "boxed", "the last \\boxed{} is empty")
                continue
            answers.append((st, st.text))
        else:
            text = _phrase_answer(st.text, gold)
            if text is not None:
                answers.append((st, text))
    if not answers:
        return None
    last, last_text = answers[-1]
    taken_back = retraction(section[last.end :])
    if taken_back == "retracted":
        return Extraction(None, last.kind, "the stated answer is taken back after it")
    if taken_back == "reconsidered":
        sentence, _ = closing_sentence(section[last.end :])
        later, _ = read_sentence(sentence, _number_wanted(gold)) if sentence else (None, "")
        if later is not None and not _same_text_answer(later, last_text):
            return Extraction(None, last.kind, f"the stated answer is reconsidered afterwards: {_short(later)}")
    extraction = _consistent([text for _, text in answers], gold, last.kind)
    if extraction.answer is not None and last.kind == "boxed" and (gold is None or not gold.several):
        alternative = box_alternative(section, last.start, last.end)
        if alternative and not _same_text_answer(alternative, extraction.answer):
            return Extraction(None, "boxed", f"the boxed answer comes with an alternative: or {_short(alternative)}")
    return extraction


def _number_wanted(gold: Gold | None) -> bool:
    return gold is None or gold.number_like


def _phrase_answer(content: str, gold: Gold | None) -> str | None:
    """What an answer phrase states: its text when that is a value (``12 apples``, ``4 or 5``), else
    the value a sentence states (``**Final Answer** Janet makes $18 every day.`` -> ``18``)."""
    if (gold is not None and gold.choice) or len(content) > MAX_ANSWER_CHARS:
        return content  # (judged as it is; too long an answer is refused there)
    if gold is not None and isinstance(gold.value, Text):
        lead = re.match(r"^([^,;:$]{1,30}?)\s*[,;:—-]\s", content)  # "Yes, because 221 = 13 x 17"
        return closing_statement(content) or (lead.group(1) if lead and len(lead.group(1).split()) <= 3 else content)
    value = parse_value(normalize(content))
    if value is not None and not _has_text(value) and not _PROSE.search(_MATH.sub(" ", content)):
        return content
    answer, _ = read_sentence(content, _number_wanted(gold), _ratio_wanted(gold))
    return answer


_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two words in a row: a sentence
_MATH = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+(?:\{[^{}]*\})*", re.S)


def _has_text(value: Value) -> bool:
    """Words somewhere in a parsed value: a sentence ("The trip takes 2 hours and 30 minutes"), not a value."""
    if isinstance(value, Text):
        return True
    if isinstance(value, Collection):
        return any(_has_text(item) for item in value.items)
    if isinstance(value, Equation):
        return any(_has_text(side) for side in value.sides)
    return False


def _ratio_wanted(gold: Gold | None) -> bool:
    return gold is not None and isinstance(gold.value, Ratio)


def _fallback(section: str, gold: Gold | None) -> Extraction:
    """No statement: a closing line that is only an option letter, or the value the closing sentence states."""
    if gold is not None and gold.choice:
        line = choice_line(section)
        if line is not None:
            return Extraction(line, "choice_line")
    number_wanted = _number_wanted(gold)
    source: ExtractionSource = "last_number" if number_wanted else "last_formula"
    sentence, why = closing_sentence(section)
    if sentence is None:
        return Extraction(None, source, why)
    if gold is not None and isinstance(gold.value, Text):
        statement = closing_statement(sentence)
        if statement is not None:
            return Extraction(statement, "closing_statement")
    answer, why = read_sentence(sentence, number_wanted, _ratio_wanted(gold))
    return Extraction(answer, source, why)


def _same_text_answer(a: str, b: str) -> bool:
    """Two answer strings state the same value (``\\frac{3}{8}`` and ``37.5\\%``)."""
    va, vb = parse_value(normalize(a)), parse_value(normalize(b))
    return va is not None and vb is not None and same_answer(va, vb)


def _consistent(answers: list[str], gold: Gold | None, source: ExtractionSource) -> Extraction:
    """The answer stated by every one of ``answers`` (answer texts); several different ones are a hedge,
    unless the gold has several values and each statement gives one of them."""
    keys: dict[str, str] = {}  # normalized -> raw, in order of first appearance
    for text in answers:
        keys.setdefault(normalize(text), text)
    if len(keys) == 1:
        return Extraction(answers[-1], source)
    if len(keys) > MAX_ITEMS:
        return Extraction(None, source, f"states {len(keys)} different answers")
    if gold is not None and gold.choice:
        letters = {read_choice(text) for text in answers}
        if len(letters) == 1 and None not in letters:
            return Extraction(answers[-1], source)
        return Extraction(None, source, f"states {len(keys)} different answers")
    parsed = {k: parse_value(k) for k in keys}
    last = parsed[normalize(answers[-1])]
    if last is not None and all(v is not None and same_answer(v, last) for v in parsed.values()):
        return Extraction(answers[-1], source)
    if gold is not None and gold.several and None not in parsed.values():
        if isinstance(last, Collection) and all(
            v is last or any(same_answer(v, item) for item in last.items) for v in parsed.values()
        ):
            return Extraction(answers[-1], source)  # the parts, then the whole answer
        if not any(isinstance(v, Collection) for v in parsed.values()):
            return Extraction(", ".join(keys.values()), source)  # one statement per value
    return Extraction(None, source, f"states {len(keys)} different answers")


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
    if len(text) > MAX_ANSWER_CHARS and not _LONG_NUMBER.fullmatch(text):
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
    if isinstance(value, Scalar) and value.big is not None:
        return math_bignum.canonical(value.big)
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


@register("math", isolated=True, timeout_s=5.0, warm_up_cases=_WARM_UP_CASES,
          requires=("answer",))  # sympy on model text: a sandboxed process per sample, killed at 5 s
def math_verifier(completion: str, example: Mapping[str, Any], *, finish_reason: str = "stop") -> Verdict:
    """Correct iff the final answer of ``completion`` is ``example['answer']`` (see the module doc).

    ``finish_reason``: ``"stop"``, or ``"length"`` when the completion was cut at max_new_tokens;
    then only an explicit final answer (a box, an answer phrase, ``####``) can be correct.
    """
    if finish_reason not in FINISH_REASONS:
        raise ValueError(f"finish_reason={finish_reason!r}: expected one of {', '.join(FINISH_REASONS)} "
                         "('length' when the completion was cut at max_new_tokens)")
    raw_gold = example.get("answer") if isinstance(example, Mapping) else None
    try:
        gold = parse_gold(raw_gold)
        if gold is None:
            return Verdict("unverifiable", 0.0, f"gold answer {_short(repr(raw_gold))} could not be parsed")
        extraction = extract_answer(completion or "", gold, finish_reason=finish_reason)
        if extraction.answer is None:
            return Verdict("incorrect", 0.0, extraction.reason or "no final answer found")
        correct, reason, canonical = _judge(extraction.answer, gold)
    except (Exception, RecursionError) as exc:  # a bug or a sympy failure is the verifier's, not the model's
        return Verdict("unverifiable", 0.0, f"verifier error: {exc!r}"[:200])
    reason = f"{reason} ({extraction.source})"
    if correct:
        return Verdict("correct", 1.0, reason, extracted=canonical)
    return Verdict("incorrect", 0.0, reason, extracted=canonical)
