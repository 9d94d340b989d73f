"""Reading a final answer out of a closing sentence, when nothing states it explicitly.

The last number of a completion is a reward channel unless it is read with care: a number
in a question (``could it be 14?``), under a negation (``it is not 14``), among candidates in
a code block or table, before filler, or in a repetition loop is no answer. So the fallback
reads only the closing sentence (``closing_sentence``: the last sentence of prose, courtesy
lines such as ``I hope this helps!`` skipped), and takes a value from it only when the
sentence states a result (``read_sentence``): not a question, not negated or hedged, not an
intention (``Let me compute ...``), and nothing but a few words (a unit, ``in all``) after
the value. A time, date, duration or ratio around the last number is taken whole.

Also here: ``retraction``, the words with which a model takes back what it just stated.
All scanning is linear (bounded regexes over a bounded tail).
"""

from __future__ import annotations

import re

from verifiers.math_quantities import quantity_spans

_TAIL_CHARS = 6000  # the closing sentence is near the end; never scan more than this
_MAX_SENTENCE = 1500  # a longer "sentence" states no single answer (and bounds the regexes below)
_COURTESY = re.compile(
    r"^\W*(?:i\s+hope\s+(?:this|that|it)\s+(?:helps|is\s+(?:correct|helpful|clear|right))|hope\s+(?:this|that|it)\s+helps"
    r"|let\s+me\s+know|feel\s+free|happy\s+to\s+help|good\s+luck|if\s+you\s+have\s+(?:any\s+)?(?:other\s+|further\s+|more\s+)?questions"
    r"|is\s+there\s+anything\s+else|thank\s+you|thanks|would\s+you\s+like|do\s+you\s+want|shall\s+i|if\s+you'?d\s+like)\b"
    r"|^[^A-Za-z0-9`|]*$",  # an emoji on its own (a code fence or a table row is no courtesy)
    re.I,
)
_TABLE_ROW = re.compile(r"^\s*\|")
_FENCE = "```"
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]\.[A-Za-z]\.|\b(?:e\.g|i\.e|etc|vs|approx|Mr|Mrs|Dr|St|No)\.)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)]|#+)\s+")
_CONCLUDES = re.compile(r"\b(?:total|answer|final|result|therefore|thus|hence|so)\b", re.I)

_NEGATION = re.compile(
    r"\bnot\b|n't\b|\bnever\b|\bwrong\b|\bincorrect\b|\binstead\b|\brather than\b|\bno longer\b|\bunlikely\b", re.I
)
_HEDGE = re.compile(
    r"\b(?:maybe|perhaps|possibly|probably|might|guess|try|trying|candidates?|possibilit(?:y|ies)|unsure|suppose"
    r"|whether|seems?|roughly"
    r"|estimate|(?:it|this|that|which|answer)\s+(?:could|may))\b|\boptions?\s*:|\beither\b.*\bor\b"
    r"|\bif\b.*\b(?:would|were|could|might)\b|\b(?:would|could|might)\b.*\bif\b",
    re.I,
)
_INTENTION = re.compile(
    r"^\W*(?:let\s+me|let's|let\s+us|we\s+need|we\s+have\s+to|i\s+will|i'll|i\s+need|now,?\s+let)\b", re.I
)
_CONDITION_BEFORE = re.compile(  # the last number is a condition, not the result: "... multiples of 6 below 105"
    r"\b(?:below|above|under|over|than|from|among|between|per|by|within|except|besides|beyond|exceeding|up\s+to"
    r"|before|after|with|without|during|since|until|including|excluding|instead\s+of|rather\s+than|not)"
    r"\s+(?:the\s+|a\s+|an\s+)?\$?\s*$",
    re.I,
)
_OTHER_NEGATED = re.compile(r"\b(?:instead\s+of|rather\s+than|not)\s+\$?(-?\d[\d.,/]*)", re.I)  # "not 40", "instead of 40"
_RESULT_WORD = re.compile(r"=|\b(?:is|are|was|were|equals?|gives?|makes?|get|gets|has|have|total(?:s)?)\b", re.I)
_RESULT_BEFORE = re.compile(r"(?:=|\b(?:is|are|gives?|get|gets|makes?|equals))\s*\$?\s*$", re.I)
_CLAUSE_BREAK = re.compile(r"[,;:]|\bbut\b", re.I)
_RATIO_WORDS = re.compile(r"(?<![\d.])(\d+)\s+to\s+(\d+)(?!\.?\d)")
_CONTINUES = re.compile(  # words after the value that mean the sentence goes on computing
    r"\b(?:then|next|subtract|add|multiply|divide|divided|minus|plus|times|step|to\s+get|we\s+get)\b", re.I
)
_UNFINISHED = re.compile(r"(?:\b(?:the|a|an|of|to|and|or|is|are|be|by|with|which|that|than|for|from|at|in|on)|[=+\-*/,:(])\s*$", re.I)
_NUMBER_TOKEN = re.compile(
    r"(?<![\w.^_])(?<!\^\{)(?<!_\{)-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|"
    r"(?<![\w.^_])(?<!\^\{)(?<!_\{)-?\d{1,3}(?: \d{3})+(?![\w.,/])|"  # 1 000 000
    r"(?<![\w.^_])(?<!\^\{)(?<!_\{)-?\d+(?:\.\d+)?(?:/\d+)?(?![\w/])|\\frac\{-?\d+\}\{\d+\}"
)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$([^$\n]+?)\$", re.S)
_PROSE_IN_MATH = re.compile(r"(?<![\\{A-Za-z])[A-Za-z]{2,}\s+[A-Za-z]{2,}(?![^{]*\})")
_HEDGE_BETWEEN = re.compile(
    r"^(?:,|;|/|or|and|,\s*or|,\s*and|or\s+(?:maybe|possibly|perhaps)|to|\\text\{\s*or\s*\})$", re.I
)

_RETRACTED = re.compile(
    r"\b(?:that'?s|that\s+is|this\s+is|it'?s|it\s+is)\s+(?:wrong|incorrect|not\s+right|not\s+correct)\b"
    r"|\b(?:doesn'?t|does\s+not)\s+(?:look|seem)\s+right\b|\b(?:i|we)\s+made\s+(?:a|an)\s+(?:mistake|error)\b"
    r"|\bmy\s+mistake\b|\boops\b|\bno,?\s+wait\b|\bwait,?\s+no\b|\bi\s+(?:forgot|skipped|missed|miscounted|miscalculated|misread)\b"
    r"|\bnot\s+sure\b|\bunsure\b|\bnot\s+certain\b",
    re.I,
)
_RESTATES = re.compile(r"\b(?:answer|it(?:'s|\s+is)|should\s+be|must\s+be|correct\s+(?:value|answer|count|total)|instead)\b", re.I)
_RECONSIDERED = re.compile(
    r"\b(?:wait|hmm+|actually|on\s+second\s+thought|let\s+me\s+re(?:consider|check|do|count|compute|calculate|think|visit))\b",
    re.I,
)


def retraction(tail: str) -> str | None:
    """How the text after a stated answer takes it back: ``"retracted"`` (``that's wrong``, ``no wait``),
    ``"reconsidered"`` (``wait``, ``actually``, then a closing sentence that restates an answer:
    ``it is 6``, ``should be 6``; taken back if that value differs), or None."""
    tail = tail[:_TAIL_CHARS]
    if _RETRACTED.search(tail):
        return "retracted"
    if _RECONSIDERED.search(tail):
        sentence, _ = closing_sentence(tail)
        if sentence is not None and _RESTATES.search(sentence):
            return "reconsidered"
    return None


def closing_sentence(text: str) -> tuple[str | None, str]:
    """The last sentence of prose in ``text`` (courtesy skipped), or (None, why there is none).

    A code block or table at the end is skipped (``There are 17 ... `` then a check in Python),
    unless the prose before it only introduces it (``Let me list the candidates:``).
    """
    tail = text[-_TAIL_CHARS:]
    if repetition_loop(tail):
        return None, "the text ends in a repetition loop"
    if tail.count(_FENCE) % 2 == 1:
        return None, "the text ends inside a code block"
    lines = tail.split("\n")
    skipped_block = False
    while lines:
        last = lines[-1]
        if not last.strip() or _COURTESY.match(_EMPHASIS.sub("", last)) or _TABLE_ROW.match(last):
            skipped_block = skipped_block or bool(_TABLE_ROW.match(last))
            lines.pop()
        elif last.strip().startswith(_FENCE):
            lines.pop()
            while lines and not lines[-1].strip().startswith(_FENCE):
                lines.pop()
            if lines:
                lines.pop()
            skipped_block = True
        else:
            break
    if not lines:
        return None, "the text ends in a code block or table, not a stated answer" if skipped_block else "no final answer found"
    last = lines[-1]
    if skipped_block and last.rstrip(" *").endswith(":"):
        return None, "the text ends in a code block or table, not a stated answer"
    if len(lines) > 1 and _LIST_MARKER.match(last) and _LIST_MARKER.match(lines[-2]) and not _CONCLUDES.search(last):
        return None, "the text ends in a list, not a stated answer"  # "1. 10\n2. 12\n3. 14": candidates
    line = _LIST_MARKER.sub("", _EMPHASIS.sub("", last)).strip()
    sentences = [s for s in _split_sentences(line) if s.strip()]
    while sentences and _COURTESY.match(sentences[-1]):
        sentences.pop()
    if not sentences:
        return None, "no final answer found"
    return sentences[-1].strip(), ""


def _split_sentences(line: str) -> list[str]:
    """Split at sentence ends outside ``$...$`` (a decimal point is no sentence end)."""
    parts, start, in_math = [], 0, False
    for i, c in enumerate(line):
        if c == "$":
            in_math = not in_math
        elif c in ".!?" and not in_math and (i + 1 == len(line) or line[i + 1] == " "):
            if c == "." and i + 1 < len(line) and _ABBREVIATION.search(line[: i + 1]):
                continue  # "6:45 a.m. to arrive", "e.g. 5"
            parts.append(line[start : i + 1])
            start = i + 1
    parts.append(line[start:])
    return parts


def repetition_loop(text: str) -> bool:
    """The text ends by repeating itself: one chunk (2 to 400 characters) three times in a row, or
    the closing sentence (10+ characters) three or more times in the last part of the text."""
    tail = text.rstrip()[-3000:]
    for period in range(2, min(400, len(tail) // 3) + 1):
        last = tail[-period:]
        if not last.strip() or not re.search(r"[A-Za-z\s]", last):
            continue  # "0.333333" repeats digits: a decimal, not a loop
        if tail[-2 * period : -period] == last and tail[-3 * period : -2 * period] == last:
            return True
    sentences = [s.strip() for s in _SENTENCE_END.split(tail) if len(s.strip()) >= 10]
    return bool(sentences) and tail.count(sentences[-1]) >= 3


def read_sentence(sentence: str, number_wanted: bool, ratio_wanted: bool = False) -> tuple[str | None, str]:
    """The value a closing sentence states, or (None, why not).

    ``number_wanted``: take the last number (or the time, date, duration or ratio around it);
    otherwise the last formula (``$...$``) of the sentence. ``ratio_wanted`` (the gold is a
    ratio): ``2 to 1`` is the ratio 2:1.
    """
    s = _EMPHASIS.sub("", sentence).strip()
    if len(s) > _MAX_SENTENCE:
        return None, "the closing sentence is too long to be a stated answer"
    if repetition_loop(s):
        return None, "the sentence repeats itself"
    if ratio_wanted:
        s = _RATIO_WORDS.sub(r"\1:\2", s)
    if s.rstrip().endswith("?"):
        return None, f"the closing sentence is a question: {_short(s)!r}"
    if _HEDGE.search(s):
        return None, f"the closing sentence does not state an answer: {_short(s)!r}"
    if _UNFINISHED.search(s.rstrip(" .!")):
        return None, f"the closing sentence is unfinished: {_short(s)!r}"
    formulas = [m for m in _MATH_SPAN.finditer(s) if not _PROSE_IN_MATH.search(_content(m))]
    numbers = list(_NUMBER_TOKEN.finditer(s))
    if not number_wanted:
        if not formulas:
            return None, "no final answer found"
        group = _joined_formulas(s, formulas)
        return ", ".join(_content(m).strip() for m in group), ""
    quantities = quantity_spans(s)
    if not numbers and not quantities:
        return None, "no final answer found"
    last = max(numbers, key=lambda m: m.end(), default=None)
    if last is not None and _CONDITION_BEFORE.search(s[: last.start()]):
        result = _stated_after_result_word(s, numbers, last)  # "so there are 17 multiples of 6 below 105"
        last = result if result is not None else last
    start, end = last.span() if last is not None else (-1, -1)
    for a, b in sorted(quantities, key=lambda span: span[1] - span[0]):
        if (a <= start and end <= b) or b > end:  # the quantity around the last number, or one after it
            start, end = a, b
    formula = next((m for m in formulas if m.start() <= start and end <= m.end()), None)
    if formula is not None:
        group = _joined_formulas(s, [m for m in formulas if m.end() <= formula.end()])
        start, end = group[0].start(), group[-1].end()
        answer = ", ".join(_content(m).strip() for m in group)
    else:
        answer = s[start:end].rstrip(". ")  # "20 minutes." ends the sentence too
        index = next((i for i, n in enumerate(numbers) if last is not None and n.start() == last.start()), 0)
        if index > 0 and start == last.start():
            previous = numbers[index - 1]
            between = s[previous.end() : start].replace("$", "").strip()
            if (_HEDGE_BETWEEN.match(between) or not between) and previous.group() != last.group():
                return None, f"hedged between {previous.group()} and {last.group()}"
    after = s[end:].strip(" .!*")
    if len(after.split()) > 14 or _CONTINUES.search(after):
        return None, f"the closing sentence goes on after the value: {_short(s)!r}"
    if _INTENTION.match(s) and not _RESULT_BEFORE.search(s[:start]):
        return None, f"the closing sentence announces work, not a result: {_short(s)!r}"  # "Let's see if 14 works"
    clause = s[_clause_start(s[:start]) :]  # "Since she didn't eat any, she has 14": the negation is elsewhere
    value = s[start:end]
    clause = _OTHER_NEGATED.sub(lambda m: m.group() if m.group(1).rstrip(".,") == value else " ", clause)  # "45 instead of 40"
    if _NEGATION.search(clause):
        return None, f"the closing sentence negates its value: {_short(s)!r}"
    return answer, ""


def _stated_after_result_word(s: str, numbers: list[re.Match], last: re.Match) -> re.Match | None:
    """The first number after the last result word (is, are, was, =, gives) of the final clause, or else
    of the whole sentence ("The original price was $80, before the 25% discount"), if any."""
    clause = _clause_start(s[: last.start()])
    markers = [m.end() for m in _RESULT_WORD.finditer(s, clause, last.start())]
    markers = markers or [m.end() for m in _RESULT_WORD.finditer(s, 0, last.start())]
    if not markers:
        return None
    return next((n for n in numbers if n.start() >= markers[-1]), None)


def _clause_start(text: str) -> int:
    """Where the last clause of ``text`` starts (after its last comma, semicolon, colon or 'but')."""
    return max((m.end() for m in _CLAUSE_BREAK.finditer(text)), default=0)


def _joined_formulas(s: str, formulas: list[re.Match]) -> list[re.Match]:
    """The last formula and those joined to it by or/and/commas (``$4$ or $5$`` stays a visible hedge)."""
    group = [formulas[-1]]
    for m in reversed(formulas[:-1]):
        between = s[m.end() : group[0].start()]
        if len(between) > 12 or not re.fullmatch(r"\s*(?:,|;)?\s*(?:(?:either|or|and)\s+)?(?:or|and)?\s*", between, re.I):
            break
        group.insert(0, m)
    return group


def _content(m: re.Match) -> str:
    return next(g for g in m.groups() if g is not None)


def _short(s: str, limit: int = 60) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."
