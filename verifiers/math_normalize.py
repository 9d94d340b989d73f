"""String normalization of final math answers, before they are parsed.

``normalize`` turns what a model (or a dataset) writes as a final answer into one
canonical LaTeX-ish spelling: unicode math becomes LaTeX, math delimiters and
spacing commands go, ``\\dfrac``/``\\tfrac`` become ``\\frac``, and thousands
separators (``1,000``, ``1{,}000``, ``1\\,000``, ``1 000``) are removed. It keeps
everything that can change the value (units and percent signs are dealt with by
``strip_units``, once the parser knows the answer is a number).

Every step is a regex or a linear scan: no step can hang on adversarial text.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

# ---------------------------------------------------------------- unicode math

_UNICODE_TO_LATEX = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-",
    "\u00d7": r" \times ", "\u2715": r" \times ", "\u22c5": r" \cdot ", "\u00b7": r" \cdot ", "\u2219": r" \cdot ",
    "\u00f7": r" \div ", "\u2215": "/", "\u2044": "/",
    "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u2264": r" \le ", "\u2265": r" \ge ", "\u2260": r" \neq ",
    "\u2a7d": r" \le ", "\u2a7e": r" \ge ", "\u222a": r" \cup ", "\u2229": r" \cap ", "\u2208": r" \in ",
    "\u00b1": r"\pm ", "\u2213": r"\mp ", "\u2248": r" \approx ", "\u2205": r"\emptyset ", "\u211d": r"\mathbb{R}",
    "\u00b0": r"^\circ ", "\u2103": r"^\circ ", "\u2109": r"^\circ ", "\u221a": r"\sqrt", "\u221b": r"\sqrt[3]", "\u221c": r"\sqrt[4]", "\u2032": "'",
    "\u2061": "", "\u200b": "", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ",
    "\u2026": r"\ldots ", "\u27e8": "(", "\u27e9": ")", "\u00ba": r"^\circ ",
}
_UNICODE_RE = re.compile("|".join(re.escape(k) for k in _UNICODE_TO_LATEX))


def _script_map(kind: str) -> dict[str, str]:
    """Unicode sub- or superscript characters (``<sub>``/``<super>`` decompositions) -> the plain character."""
    chars = {}
    for code in [0xB2, 0xB3, 0xB9, *range(0x2070, 0x20A0), *range(0x1D2C, 0x1D6B), *range(0x1D9B, 0x1DC0),
                 *range(0x2B0, 0x2B9), 0x2C7C]:
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition.startswith(kind):
            plain = chr(int(decomposition.split()[1], 16)).replace("\u2212", "-")
            if plain.isascii() and (plain.isalnum() or plain in "+-=()"):
                chars[chr(code)] = plain
    return chars


_SUPERSCRIPTS = _script_map("<super>")  # ¹²³ ⁿ ⁱ ⁻ ⁽⁾ and modifier letters: an exponent, never a digit
_SUBSCRIPTS = _script_map("<sub>")  # ₀..₉ ₙ ₐ: an index or a base (123₇), never a digit
_SUPERSCRIPT_RUN = re.compile("[" + "".join(_SUPERSCRIPTS) + "]+")
_SUBSCRIPT_RUN = re.compile("[" + "".join(_SUBSCRIPTS) + "]+")
_SCRIPT_FRACTION = re.compile(  # ¹⁄₂
    "([" + "".join(c for c, p in _SUPERSCRIPTS.items() if p.isdigit()) + "]+)\\s*[\u2044/]\\s*(["
    + "".join(c for c, p in _SUBSCRIPTS.items() if p.isdigit()) + "]+)"
)
_SCRIPT_ROOT = re.compile("([" + "".join(c for c, p in _SUPERSCRIPTS.items() if p.isdigit()) + "]+)\u221a")  # ³√2
_VULGAR_FRACTION = re.compile("[\u00bc-\u00be\u2150-\u215e]")
_ROOT_ARG = re.compile(r"\\sqrt(\[\d\])?\s*(\d+(?:\.\d+)?|[A-Za-z])")


def _plain(script: str) -> str:
    return "".join(_SUPERSCRIPTS.get(c) or _SUBSCRIPTS[c] for c in script)


def unicode_to_latex(text: str) -> str:
    """Unicode math as LaTeX: ``−``, ``×``, ``π``, ``√2``, ``x²``, ``½``, ``≤``, ``°``, full-width digits."""
    if text.isascii():
        return text
    text = _SCRIPT_FRACTION.sub(lambda m: r"\frac{%s}{%s}" % (_plain(m.group(1)), _plain(m.group(2))), text)
    text = _SCRIPT_ROOT.sub(lambda m: r"\sqrt[%s]" % _plain(m.group(1)), text)
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + _plain(m.group()) + "}", text)
    text = _SUBSCRIPT_RUN.sub(lambda m: "_{" + _plain(m.group()) + "}", text)

    def vulgar(m: re.Match) -> str:
        value = Fraction(unicodedata.numeric(m.group())).limit_denominator(100)
        return r"\frac{%d}{%d}" % (value.numerator, value.denominator)

    text = _VULGAR_FRACTION.sub(vulgar, text)
    text = _UNICODE_RE.sub(lambda m: _UNICODE_TO_LATEX[m.group()], text)
    text = unicodedata.normalize("NFKC", text)  # full-width digits and letters, ligatures
    return _ROOT_ARG.sub(lambda m: "\\sqrt" + (m.group(1) or "") + "{" + m.group(2) + "}", text)


# ---------------------------------------------------------------- LaTeX cleanup

_DELIMITERS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$")
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![A-Za-z])\s*")
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])\s*")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*\{[^{}]*\}")
_SPACING = re.compile(r"(?<!\\)\\[,;: ]|\\(?:quad|qquad|thinspace|enspace|medspace|thickspace)(?![A-Za-z])|~")
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_TEXT_VARIANTS = re.compile(
    r"\\(?:textbf|textit|textrm|textnormal|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathtt|mbox|hbox|emph|bm"
    r"|boldsymbol)(?![A-Za-z])\s*(?=\{)"
)
_TEXT_WORD_SEPARATOR = re.compile(r"\\text\{\s*(or|and|OR|AND|Or|And)\s*\}")
_TEXT_WITH_DIGITS = re.compile(r"\\text\{([^{}]*[\d,][^{}]*)\}")
_THOUSANDS_BRACE = re.compile(r"\{,\}")
_THOUSANDS_THIN = re.compile(r"(?<=\d)\\[,!; ](?=\d{3}(?!\d))")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.])")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?!\d|,\d)")
_WHITESPACE = re.compile(r"\s+")
_BOXED_WHOLE = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.S)


def normalize(text: str) -> str:
    """Canonical spelling of a final answer; the value is unchanged.

    >>> normalize(r"$\\dfrac{1}{2}$")
    '\\\\frac{1}{2}'
    >>> normalize("1{,}000")
    '1000'
    """
    s = unicode_to_latex(text)
    s = _DELIMITERS.sub(" ", s.replace(r"\$", " \\dollar "))
    s = s.replace(r"\dollar", r"\$")
    s = _SIZING.sub("", s).replace("\\langle", "(").replace("\\rangle", ")")
    s = _STYLE.sub("", s)
    s = _PHANTOM.sub("", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _TEXT_VARIANTS.sub(r"\\text", s)
    s = _TEXT_WORD_SEPARATOR.sub(r" \1 ", s)
    s = _TEXT_WITH_DIGITS.sub(r" \1 ", s)  # \text{12 apples}, \mathbf{4}, \text{A, C}: values, not words
    s = s.replace(r"\%", "%").replace(r"\lt", "<").replace(r"\gt", ">")
    s = _THOUSANDS_BRACE.sub(",", s)
    s = _THOUSANDS_THIN.sub("", s).replace("\\!", "")
    s = _SPACING.sub(" ", s)
    s = _WHITESPACE.sub(" ", s).strip()
    s = _THOUSANDS_SPACE.sub(lambda m: m.group().replace(" ", ""), s)
    s = _THOUSANDS_COMMA.sub(lambda m: m.group().replace(",", ""), s)
    while True:  # a box inside the answer (\boxed{\boxed{5}}) or a trailing full stop
        s = s.strip().rstrip(".").strip()
        m = _BOXED_WHOLE.match(s)
        if not m or not braces_balanced(m.group(1)):
            return s
        s = m.group(1)


def braces_balanced(s: str) -> bool:
    """Every '}' closes an earlier '{', and all are closed."""
    depth = 0
    for c in s:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


# ---------------------------------------------------------------- units, currency, percent

_CURRENCY = re.compile(r"\\\$|\$|\\euro|\\pounds|\\yen|[€£¥₹₩₽]|\b(?:Rs\.?|INR|USD|EUR|GBP)(?=\s|\d|$)")
_PERCENT = re.compile(r"\s*(?:%|\\text\{\s*(?:percent|per cent|pct)\s*\}|\b(?:percent|per cent|pct)\b)\s*$", re.I)
_TRIG = re.compile(r"\\(?:sin|cos|tan|sec|csc|cot)(?![A-Za-z])")
_DEGREES = re.compile(  # a trailing degree sign, a unit
    r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree)\s*(?:\\text\{\s*[CF]\s*\}|[CF](?![A-Za-z]))?\s*$"
)
_INNER_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\degree(?![A-Za-z])")  # braces only in pairs
_TEXT_UNIT = re.compile(r"\\text\{\s*([A-Za-z][A-Za-z .'/\-]*)\s*\}(\s*\^\s*\{?\s*[23]\s*\}?)?")
_UNIT_EXPONENT = re.compile(r"\s*\^\s*\{?\s*[23]\s*\}?\s*$")
_ABBREVIATED_UNITS = frozenset(
    "m cm mm km kg g mg s ms h hr hrs min ft in lb lbs oz mph kmh kph l ml L mL K sq cu".split()
)
MATH_WORDS = frozenset(
    "sin cos tan sec csc cot arcsin arccos arctan sinh cosh tanh log ln exp lg sqrt pi inf infty lim max min "
    "gcd lcm mod det deg dim ker arg i e".split()
)


def strip_units(s: str) -> tuple[str, bool]:
    """Drop currency, degree signs and trailing units from a numeric answer; return (rest, had a percent sign).

    Only what cannot be part of the value goes: ``5\\text{ cm}^2`` -> ``5``, ``\\$18.90`` -> ``18.90``,
    ``90^\\circ`` -> ``90``, ``12 apples`` -> ``12``; ``2x`` and ``3\\pi`` are kept whole.
    """
    s = _CURRENCY.sub(" ", s)
    if not _TRIG.search(s):  # \sin 30^\circ: the sign is part of the value (latex2sympy converts it)
        s = _DEGREES.sub(" ", s)
        s = _INNER_DEGREES.sub("", s)  # \frac{540^\circ}{5}: without a trig function a degree sign is a unit
    s = _WHITESPACE.sub(" ", s).strip()
    percent = False
    m = _PERCENT.search(s)
    if m and m.start() > 0:
        s, percent = s[: m.start()].strip(), True

    def drop_text_unit(m: re.Match) -> str:  # \text{...} right after a value is a unit, whatever its letters
        words = m.group(1).split()
        return " " if words and all(w.strip(".'-").replace("/", "").isalpha() for w in words) else m.group()

    rest = _TEXT_UNIT.sub(drop_text_unit, s).strip()
    if rest and rest != s and _has_math(rest):
        s = rest
    rest = _drop_trailing_words(s)
    if rest is not None and _has_math(rest):
        s = rest
    m = _PERCENT.search(s)  # "50 \%" after a unit was dropped, or "5 percent"
    if m and m.start() > 0:
        s, percent = s[: m.start()].strip(), True
    return s, percent


def _drop_trailing_words(s: str) -> str | None:
    """``12 apples`` -> ``12``, ``5 cm^2`` -> ``5``, ``12kg`` -> ``12``; None when there is no unit to drop.

    A backwards scan, linear in the length (a regex for this backtracks badly on long junk).
    """
    exponent = _UNIT_EXPONENT.search(s)
    end = exponent.start() if exponent else len(s)
    j = end
    while j > 0 and (s[j - 1].isalpha() or s[j - 1] in " .'-/"):
        j -= 1
    while j < end and not s[j].isalpha():  # the unit starts at a letter
        j += 1
    head, tail = s[:j], s[j:end]
    words = [w for w in re.split(r"[\s/]+", tail) if w]
    if not words or not head.strip() or head.rstrip()[-1] not in "0123456789})":
        return None
    if not all(_is_unit_word(w) for w in words):
        return None
    if head == head.rstrip() and words[0] not in _ABBREVIATED_UNITS:
        return None  # "2ab": without a space only a known abbreviation is a unit
    return head.strip()


def _is_unit_word(word: str) -> bool:
    word = word.strip(".'-")
    if not word.isalpha():
        return False
    if word in _ABBREVIATED_UNITS:
        return True
    return len(word) >= 2 and word.lower() not in MATH_WORDS


def _has_math(s: str) -> bool:
    return any(c.isdigit() for c in s) or "\\" in s


# ---------------------------------------------------------------- text answers

_TEXT_WRAPPER = re.compile(r"\\text\s*\{([^{}]*)\}")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_ARTICLES = re.compile(r"^(?:the|a|an) ")


def unwrap_text(s: str) -> str:
    """``\\text{Monday}`` -> ``Monday`` (repeatedly, for nested wrappers)."""
    for _ in range(4):
        t = _TEXT_WRAPPER.sub(lambda m: " " + m.group(1) + " ", s)
        if t == s:
            break
        s = t
    return _WHITESPACE.sub(" ", s).strip()


def normalize_text(s: str) -> str:
    """Lower-case words only: ``\\text{The Monday.}`` -> ``monday``."""
    s = unwrap_text(s).lower().replace("\\", " ")
    s = _NON_WORD.sub(" ", s).strip()
    return _ARTICLES.sub("", s)


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}


def number_word_value(text: str) -> int | None:
    """``five`` -> 5, ``twenty-one`` -> 21, ``a hundred`` -> None (only 0..99 are spelled out in answers)."""
    words = normalize_text(text).split()
    if len(words) == 1 and words[0] in _NUMBER_WORDS:
        return _NUMBER_WORDS[words[0]]
    if len(words) == 1 and words[0] in _TENS:
        return _TENS[words[0]]
    if len(words) == 2 and words[0] in _TENS and words[1] in _NUMBER_WORDS and 0 < _NUMBER_WORDS[words[1]] < 10:
        return _TENS[words[0]] + _NUMBER_WORDS[words[1]]
    return None
