"""Finding the final answer in a completion: boxes, answer phrases, ``####``, the last number.

Pure text scanning (linear, no backtracking-prone patterns on long spans): these
functions only locate candidate answer strings. Deciding which one counts (several
different boxes, hedges) needs the parser and lives in ``verifiers.math``.
"""

from __future__ import annotations

import re

_BOX_COMMANDS = re.compile(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])")
_THINK_END = "</think>"


def final_section(completion: str) -> str:
    """The part after a closed ``<think>`` block, where a reasoning model states its answer."""
    head, sep, tail = completion.rpartition(_THINK_END)
    return tail if sep and tail.strip() else completion


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


# ---------------------------------------------------------------- answer phrases

_ANCHORS = [
    ("gsm8k", re.compile(r"^[ \t]*#{4}[ \t]*", re.M)),
    ("anchor", re.compile(r"\bfinal\s+answer\s*(?:is\b|:|=)\s*:?", re.I)),
    ("anchor", re.compile(r"\bfinal\s+answer[ \t]*:?[ \t]*$", re.I | re.M)),
    (
        "anchor",
        re.compile(
            r"\b(?:answer|option|choice)(?:\s+(?:to|for)\s+[^.:\n$]{1,40}?)?\s+(?:is|would\s+be|will\s+be)\s*:?", re.I
        ),
    ),
    ("anchor", re.compile(r"\banswer\s*(?::|=)", re.I)),
]
_MAX_CAPTURE = 4000  # longer than any final answer (the judge refuses answers over 2000 characters)
_MARKDOWN_EMPHASIS = re.compile(r"(?<![\w)}])\*\*|\*\*(?![\w({])|__")
_SENTENCE_CUT = re.compile(
    r"\.(?=\s|$)|[!?](?=\s|$)|\n|;\s"
    r"|,?\s+(?:and\s+|but\s+)?"
    r"(?:which|because|since|as\s+(?:this|it|the|we)|so\s+(?:the|that|we)|where|when|given|not)\b",
    re.I,
)


def anchored_answer(text: str) -> tuple[str | None, str]:
    """Text after the last answer phrase (``The answer is``, ``Final Answer:``, ``#### ``), cut at the sentence end."""
    text = _MARKDOWN_EMPHASIS.sub("", text)
    best = None
    for source, pattern in _ANCHORS:
        for m in pattern.finditer(text):
            if best is None or m.start() > best[0] or (m.start() == best[0] and m.end() > best[1]):
                best = (m.start(), m.end(), source)
    if best is None:
        return None, "none"
    rest = text[best[1] :]
    line_end = rest.find("\n")
    line = rest if line_end < 0 else rest[:line_end]
    if not line.strip():  # "Final Answer:\n\n$42$"
        following = [l for l in rest.split("\n") if l.strip()]
        line = following[0] if following else ""
    answer = _cut_sentence(line[:_MAX_CAPTURE]).strip().strip("*").strip()
    return (answer or None), best[2]


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


# ---------------------------------------------------------------- last number

_NOT_AN_EXPONENT = r"(?<![\w.^_])(?<!\^\{)(?<!_\{)"  # "m^{2}", "x_{1}": not the answer
_NUMBER_TOKEN = re.compile(
    _NOT_AN_EXPONENT + r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|"
    + _NOT_AN_EXPONENT + r"-?\d+(?:\.\d+)?(?:/\d+)?(?![\w/])|\\frac\{-?\d+\}\{\d+\}"
)
_HEDGE_BETWEEN = re.compile(
    r"^(?:,|;|/|or|and|,\s*or|,\s*and|or\s+(?:maybe|possibly|perhaps)|to|\\text\{\s*or\s*\})$", re.I
)


def last_number(text: str) -> tuple[str | None, str]:
    """The last number in ``text``; (None, reason) if there is none or it ends a hedge like ``4 or 5``."""
    matches = list(_NUMBER_TOKEN.finditer(text))
    if not matches:
        return None, "no final answer found"
    last = matches[-1]
    if len(matches) > 1:
        previous = matches[-2]
        between = text[previous.end() : last.start()].replace("$", "").strip()
        if _HEDGE_BETWEEN.match(between) and previous.group() != last.group():
            return None, f"hedged between {previous.group()} and {last.group()}"
        before = text[max(0, previous.start() - 12) : previous.start()].lower()
        if "either" in before and "or" in between:
            return None, f"hedged between {previous.group()} and {last.group()}"
    return last.group(), ""


# ---------------------------------------------------------------- last formula

_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$([^$\n]+?)\$", re.S)
_PROSE = re.compile(r"(?<![\\{A-Za-z])[A-Za-z]{2,}\s+[A-Za-z]{2,}(?![^{]*\})")
_JOINED_BY = re.compile(r"\s*(?:,|;)?\s*(?:(?:either|or|and)\s+)?(?:or|and)?\s*", re.I)


def last_math(text: str) -> tuple[str | None, int, int]:
    """The last formula (``$...$``, ``\\(...\\)``, ``\\[...\\]``, ``$$...$$``) and its span in ``text``.

    Formulas joined by ``or``/``and``/commas right before it come along (``$4$ or $5$`` -> ``4, 5``),
    so that a hedge stays visible. Spans that read as prose (``$5 for the apples and $``) are skipped.
    """
    spans = [m for m in _MATH_SPAN.finditer(text) if len(_content(m)) <= _MAX_CAPTURE]
    spans = [m for m in spans if not _PROSE.search(_content(m))]
    if not spans:
        return None, -1, -1
    group = [spans[-1]]
    for m in reversed(spans[:-1]):
        between = text[m.end() : group[0].start()]
        if len(between) > 12 or not _JOINED_BY.fullmatch(between):
            break
        group.insert(0, m)
    return ", ".join(_content(m).strip() for m in group), group[0].start(), group[-1].end()


def _content(m: re.Match) -> str:
    return next(g for g in m.groups() if g is not None)


def last_number_span(text: str) -> tuple[int, int]:
    """Where the last number token is, or (-1, -1)."""
    matches = list(_NUMBER_TOKEN.finditer(text))
    return (matches[-1].start(), matches[-1].end()) if matches else (-1, -1)


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
