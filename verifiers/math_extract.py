"""Finding where a completion states its final answer: boxes, answer phrases, ``####``.

Pure text scanning (linear, no backtracking-prone patterns on long spans): these functions
only locate the statements of an answer and what surrounds them (a negation before a box,
a question mark after a phrase, an assignment ``a = \\boxed{3}`` that names a value on the
way). Deciding which one counts (several different answers, hedges) needs the parser and
lives in ``verifiers.math``; reading a closing sentence is ``verifiers.math_closing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_BOX_COMMANDS = re.compile(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])")
_THINK_START, _THINK_END = "<think>", "</think>"


def final_section(completion: str, truncated: bool = False) -> str | None:
    """The part after a closed ``<think>`` block, where a reasoning model states its answer.

    None when a completion cut at max_new_tokens (``truncated``) never closed its ``<think>``
    block: everything in it is reasoning, nothing is a final answer.
    """
    head, sep, tail = completion.rpartition(_THINK_END)
    if sep:
        if not tail.strip() and truncated:
            return None  # cut right after the reasoning, before any answer
        return tail if tail.strip() else completion
    if truncated and _THINK_START in completion:
        return None
    return completion


def box_spans(text: str) -> tuple[list[tuple[int, int, int, int]], bool]:
    """(box start, box end, content start, content end) of every top-level ``\\boxed{}``/``\\fbox{}``.

    Also whether the last one never closes. Nested braces are kept; a box inside a box is part
    of the outer one; ``\\boxed 5`` (no braces) holds ``5``.
    """
    spans: list[tuple[int, int, int, int]] = []
    pos = 0
    while True:
        m = _BOX_COMMANDS.search(text, pos)
        if not m:
            return spans, False
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _closing_brace(text, i)
            if end is None:
                return spans, True
            spans.append((m.start(), end + 1, i + 1, end))
            pos = end + 1
        else:
            token = re.match(r"[^\s$\\]+", text[i:])
            if token:
                spans.append((m.start(), i + token.end(), i, i + token.end()))
                pos = i + token.end()
            else:
                pos = i


_ALTERNATIVE_BEFORE = re.compile(
    r"(\$[^$]{1,30}\$|[-+]?\d[\d.,/]*%?|\\frac\{[^{}]*\}\{[^{}]*\})\s*,?\s*\bor\s*\$?\s*$", re.I
)
_ALTERNATIVE_AFTER = re.compile(
    r"^\s*\$?\s*\.?\s*,?\s*(?:or|and/or)\s+(?:maybe\s+|possibly\s+|perhaps\s+|equivalently\s+)?"
    r"(\$[^$]{1,30}\$|[-+]?\d[\d.,/]*(?:\\?%)?|\\(?:d?frac|sqrt)\{[^{}]*\}(?:\{[^{}]*\})?|\\pi)",
    re.I,
)


def box_alternative(text: str, start: int, end: int) -> str | None:
    """A value offered next to the box with ``or`` (``4 or $\\boxed{5}$``, ``$\\boxed{5}$ or 6``), else None.

    The caller decides whether it is a hedge (a different value) or a restatement (``or 37.5\\%``).
    """
    m = _ALTERNATIVE_BEFORE.search(text[max(0, start - 40) : start]) or _ALTERNATIVE_AFTER.match(text[end : end + 40])
    return m.group(1).strip("$ ").rstrip(".,") if m else None


def _closing_brace(text: str, open_index: int) -> int | None:
    depth = 0
    for j in range(open_index, len(text)):
        c = text[j]
        if c == "{" and text[j - 1] != "\\":
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return j
    return None


# ---------------------------------------------------------------- answer statements

StatementKind = Literal["boxed", "anchor", "gsm8k"]


@dataclass(frozen=True)
class Statement:
    """One place where the completion states a final answer: a box, or the text after an answer phrase.

    ``intermediate``: a box that names a value on the way (``a = \\boxed{3}``); it does not count
    as an answer when a final statement follows it.
    """

    kind: StatementKind
    text: str
    start: int
    end: int
    intermediate: bool = False


@dataclass(frozen=True)
class Statements:
    """Every answer statement of a text, in order, and what makes a missing one telling."""

    items: tuple[Statement, ...]
    unclosed_box: bool = False  # the last \boxed{ never closes
    silenced: str = ""  # why the fallback must not look for a number: "The answer is:" with nothing after it,
    #                     a negated or questioned statement ("The answer is not 14"), a negated box


_ANCHORS = [
    ("gsm8k", re.compile(r"^[ \t]*#{4}[ \t]*", re.M)),
    ("anchor", re.compile(r"\bfinal\s+answer\s*(?:is\b|:|=)\s*:?", re.I)),
    ("anchor", re.compile(r"\bfinal\s+answer[ \t]*:?[ \t]*$", re.I | re.M)),
    ("anchor", re.compile(r"^[^\w\n]*answer[^\w\n]*$", re.I | re.M)),  # "**Answer**", "## Answer" as a heading
    (
        "anchor",
        re.compile(
            r"\b(?:answer|option|choice)(?:\s+(?:to|for)\s+[^.:\n$]{1,40}?)?\s+(?:is|would\s+be|will\s+be|must\s+be|should\s+be)\s*:?",
            re.I,
        ),
    ),
    ("anchor", re.compile(r"^[ \t>*#\-+]*(?:\d+[.)][ \t]*)?(?:\*\*)?(?:the\s+|my\s+|our\s+)?answer\s*(?:\*\*)?\s*(?::|=)", re.I | re.M)),
]  # "Answer:" starts its line; "let's verify the answer: 36 x 4 = 144" is no statement
_MAX_CAPTURE = 4000  # longer than any final answer (the judge refuses answers over 2000 characters)
_MARKDOWN_EMPHASIS = re.compile(r"(?<![\w)}])\*\*|\*\*(?![\w({])|__")
_SENTENCE_CUT = re.compile(
    r"\.(?=\s|$)|[!?](?=\s|$)|\n|;\s"
    r"|,?\s+(?:and\s+|but\s+)?"
    r"(?:which|because|since|as\s+(?:this|it|the|we)|so\s+(?:the|that|we)|where|when|given|not)\b",
    re.I,
)
_MAX_PHRASES = 64
_TRAILING_WORD = re.compile(r"\b(?:and|but|while|whereas|so|the|a|an|then)$", re.I)


def _strip_trailing_join(text: str) -> str:
    """``"4 and the "`` -> ``"4"``: the words that join a statement to the next one (a loop, not a regex
    anchored at the end, which would be quadratic)."""
    while True:
        text = text.rstrip(" \t\n,;:")
        m = _TRAILING_WORD.search(text[-12:])
        if not m:
            return text
        text = text[: len(text) - len(m.group())]



_NEGATED_CONTENT = re.compile(r"^\s*(?:n't|not|never|(?:definitely|certainly|clearly|surely)\s+not)\b", re.I)
_NOT_A_CLAIM = re.compile(  # the sentence around an answer phrase makes it hypothetical or past
    r"\b(?:if|suppose|supposing|assuming|assume|at\s+first|initially|originally|previously|earlier|i\s+thought"
    r"|we\s+thought|one\s+might|might\s+think|would\s+think|mistakenly|incorrectly|whether|unless)\b",
    re.I,
)
_SENTENCE_START = re.compile(r"(?:[.!?;]\s+|\n)(?=[^.!?;\n]*$)")
_NEGATION_BEFORE_BOX = re.compile(
    r"(?:\bnot|n't|\bnever|\\neq?|\\ne|≠)\s*(?:\$|\\\(|\\\[|\s)*$", re.I
)
_NAME = r"[A-Za-z](?:_\{?\w+\}?)?'*(?:\([^()=$]{0,12}\))?"
_ASSIGNMENT_BEFORE_BOX = re.compile(_NAME + r"\s*=\s*(?:[^=$]{0,40}=\s*)*")  # the whole formula before the box


def answer_statements(text: str, truncated: bool = False) -> Statements:
    """Boxes and answer phrases of ``text``, in order (a phrase whose answer is a box is that box).

    ``truncated``: the text was cut at max_new_tokens, so a phrase whose answer runs into the
    cut may be incomplete (``The answer is 1`` of ``... is 125``) and is not a statement.
    """
    spans, unclosed = box_spans(text)
    items: list[Statement] = []
    silenced = ""
    for box_start, box_end, a, b in spans:
        before = text[max(0, box_start - 40) : box_start]
        if _NEGATION_BEFORE_BOX.search(before):
            silenced = "the box is negated"
            continue
        items.append(Statement("boxed", text[a:b], box_start, box_end, _intermediate_box(text, box_start)))
    phrases, phrase_silenced = _phrases(text, spans, truncated)
    items += phrases
    items.sort(key=lambda st: st.start)
    last_anchor = max((p for p in phrases), key=lambda st: st.start, default=None)
    if phrase_silenced and (last_anchor is None or phrase_silenced[0] > last_anchor.start):
        silenced = silenced or phrase_silenced[1]
    return Statements(tuple(items), unclosed, silenced)


def _intermediate_box(text: str, box_start: int) -> bool:
    """``$a = \\boxed{3}$``, ``$l = 2w = \\boxed{10}$``: a named value on the way, unless an answer phrase
    introduces it (``the answer is $x = \\boxed{3}$``)."""
    line_start = text.rfind("\n", 0, box_start) + 1
    before = text[max(line_start, box_start - 80) : box_start]
    math_start = max(before.rfind("$"), before.rfind("\\("), before.rfind("\\["))
    formula = before[math_start + 1 :] if math_start >= 0 else before
    if not _ASSIGNMENT_BEFORE_BOX.fullmatch(formula.strip().lstrip("(")):
        return False
    sentence = before[: math_start if math_start >= 0 else len(before)]
    return "answer" not in sentence[_last_sentence_start(sentence) :].lower()


def _last_sentence_start(text: str) -> int:
    m = _SENTENCE_START.search(text)
    return m.end() if m else 0


def _phrases(text: str, boxes: list[tuple[int, int, int, int]], truncated: bool) -> tuple[list[Statement], tuple[int, str] | None]:
    """Statements made by answer phrases, and the last phrase that says nothing (position, why)."""
    plain = _MARKDOWN_EMPHASIS.sub(lambda m: " " * len(m.group()), text)  # same offsets
    matches = sorted(
        ((m.start(), m.end(), kind) for kind, pattern in _ANCHORS for m in pattern.finditer(plain)),
        key=lambda t: (t[0], -t[1]),
    )
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in matches:
        if kept and start < kept[-1][1]:
            continue  # "final answer is" inside "Final Answer: The final answer is"
        kept.append((start, end, kind))
    kept = kept[-_MAX_PHRASES:]  # more is a loop, not answers; the last ones still show a conflict
    statements: list[Statement] = []
    silent: tuple[int, str] | None = None
    for i, (start, end, kind) in enumerate(kept):
        if any(a < end <= b for a, b, _, _ in boxes):
            continue  # an answer phrase inside a box
        content, content_start, content_end, terminated = _phrase_content(plain, end, kind)
        if i + 1 < len(kept) and kept[i + 1][0] < content_end:  # another phrase in the same sentence
            content_end = kept[i + 1][0]  # "The answer to (a) is 3 and the answer to (b) is 4"
            content = _strip_trailing_join(plain[content_start:content_end]).strip().strip("*").strip()
            terminated = True
        if any(content_start <= a < content_end or a <= content_start < b for a, b, _, _ in boxes):
            continue  # "The answer is $\boxed{5}$": the box is the statement
        window = plain[max(0, start - 400) : start]
        sentence = window[_last_sentence_start(window) :]
        if not content:
            silent = (start, "the answer phrase is followed by nothing")
            continue
        if _NEGATED_CONTENT.match(content) or plain[content_end : content_end + 1] == "?" or content.rstrip().endswith("?"):
            silent = (start, f"the answer phrase is negated or a question: {content[:40]!r}")
            continue
        if _NOT_A_CLAIM.search(sentence) or (" if " in f" {content.lower()} "):
            continue  # "At first I thought the answer is 12, but ...", "If ..., the answer would be 3"
        if truncated and not terminated:
            silent = (start, "the answer phrase runs into the cut at max_new_tokens")
            continue
        statements.append(Statement(kind, content, start, content_end))
    return statements, silent


def _phrase_content(text: str, end: int, kind: str) -> tuple[str, int, int, bool]:
    """(answer text, its start, its end, whether something ends it before the end of the text)."""
    line_end = text.find("\n", end)
    line = text[end:] if line_end < 0 else text[end:line_end]
    start = end
    if not line.strip(" \t*:") and kind != "gsm8k":  # "Final Answer:\n\n$42$"
        for m in re.finditer(r"[^\n]*\S[^\n]*", text[end:]):
            start = end + m.start()
            line = m.group()
            break
        else:
            return "", end, end, False
    capture = line[:_MAX_CAPTURE]
    if len(line) > _MAX_CAPTURE and capture[-1:].isdigit():  # a very long number: keep its digits together
        digits = re.match(r"\d*", line[_MAX_CAPTURE:]).group()
        capture += digits
    answer = _cut_sentence(capture)
    stripped = answer.strip().strip("*").strip()
    offset = start + (len(answer) - len(answer.lstrip()))
    content_end = start + len(answer.rstrip())
    terminated = content_end < len(text) or text.endswith((".", "!", "$", "}", ")", "]"))  # a newline ends it too
    return stripped, offset, content_end, terminated


def _cut_sentence(line: str) -> str:
    """Up to the end of the sentence, never inside ``$...$``, ``\\(...\\)`` or brackets."""
    in_math, depth, i = False, 0, 0
    while i < len(line):
        c = line[i]
        if c == "$":
            in_math = not in_math
        elif line.startswith("\\(", i) or line.startswith("\\[", i):
            depth += 1
            i += 2
            continue
        elif line.startswith("\\)", i) or line.startswith("\\]", i):
            depth = max(0, depth - 1)
            i += 2
            continue
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth = max(0, depth - 1)
        elif not in_math and depth == 0:
            m = _SENTENCE_CUT.match(line, i)
            if m and not (c == "." and i > 0 and line[i - 1].isdigit() and line[i + 1 : i + 2].isdigit()):
                return line[:i]
        i += 1
    return line


_CLOSING_IS = re.compile(
    r"\b(?:is|are|was|will\s+be)\s+(?:the\s+|a\s+|an\s+)?([^\s.,;:!?$][^.;:!?$]{0,40}?)\s*[.!]?\s*$", re.I
)


def closing_statement(text: str) -> str | None:
    """``The fastest is Evelyn.`` -> ``Evelyn``: what the last sentence says something is (for text answers)."""
    lines = [l.strip() for l in text.strip().split("\n") if l.strip()]
    if not lines:
        return None
    sentence = re.split(r"(?<=[.!?])\s+", lines[-1])[-1]
    m = _CLOSING_IS.search(sentence)
    return m.group(1).strip() if m and len(m.group(1).split()) <= 4 else None


_CHOICE_LINE = re.compile(r"^\W*(?:(?:option|choice|answer)\W*)?\(?([A-Z])\)?\W*$", re.I)


def choice_line(text: str) -> str | None:
    """A closing line that is only an option letter: ``(C)``, ``**C**``, ``Option C``."""
    lines = [l.strip() for l in text.strip().split("\n") if l.strip()]
    for line in reversed(lines[-2:]):
        m = _CHOICE_LINE.match(line.replace("$", ""))
        if m and (m.group(1).isupper() or len(line) <= 3):
            return line
    return None
