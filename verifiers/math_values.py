"""Parsing a normalized final answer into a value the comparison understands.

A value is one of: ``Scalar`` (a number or an expression, kept exact: decimals become
rationals), ``Equation`` (``x = 3``, ``a = b = c``), ``Intervals`` (a union of intervals;
inequalities in one variable become intervals), ``Collection`` (a set, a tuple, or a bare
comma/``or``/``and`` separated list), ``Matrix``, ``Text``, and the prose quantities of
``verifiers.math_quantities`` (ratio, time of day, date, duration). Structure (sets, tuples,
intervals, lists, matrices, relations) is parsed here with bracket-depth scans; only
scalars and expressions go to latex2sympy, whose parser builds sympy objects from a
grammar and never evaluates Python (sympy's ``parse_expr`` is never given model text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal, Union

import sympy

from verifiers import math_bignum
from verifiers.math_latex import is_name, latex_to_sympy
from verifiers.math_quantities import ClockTime, Date, Duration, Ratio, parse_quantity
from verifiers.math_normalize import MATH_WORDS, braces_balanced, normalize_text, number_word_value, strip_units, unwrap_text


@dataclass(frozen=True)
class Scalar:
    """A number or an expression. ``ulp`` is one unit in the last place when it was written as a decimal.

    ``big``: the arithmetic tree of a number too large to handle as a plain sympy number
    (``2^{2^{30}}``, a 5000-digit integer); it is compared by ``verifiers.math_bignum`` and
    ``expr`` is then an unevaluated stand-in that must not be evaluated. ``base``: the digits
    and base of a number written in another base (``1011_2`` -> ``("1011", 2)``).
    """

    expr: sympy.Basic
    source: str
    ulp: sympy.Rational | None = None
    sig_digits: int = 0
    percent: bool = False
    big: math_bignum.Node | None = None
    base: tuple[str, int] | None = None


@dataclass(frozen=True)
class Equation:
    sides: tuple["Value", ...]  # a = b = c


@dataclass(frozen=True)
class Interval:
    lo: sympy.Basic
    hi: sympy.Basic
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True)
class Intervals:
    parts: tuple[Interval, ...]  # a union


@dataclass(frozen=True)
class Collection:
    kind: Literal["set", "tuple", "list"]  # list: bare "1, 2" or "1 or 2"
    items: tuple["Value", ...]


@dataclass(frozen=True)
class Matrix:
    rows: tuple[tuple["Value", ...], ...]


@dataclass(frozen=True)
class Text:
    text: str  # normalize_text() of the answer


Value = Union[Scalar, Equation, Intervals, Collection, Matrix, Text, Ratio, ClockTime, Date, Duration]

# ---------------------------------------------------------------- top-level splitting

_OPEN, _CLOSE = "([{", ")]}"
_LIST_SEPARATOR = re.compile(r",|;|\\\\(?!\[)|\s+(?:or|and)\s+|\\(?:lor|vee|land|wedge)(?![A-Za-z])")
_COORDINATE_SEPARATOR = re.compile(",|;")
_UNION_SEPARATOR = re.compile(r"\\cup(?![A-Za-z])|\s+U\s+")
_RELATION = re.compile(r"<=|>=|!=|\\(?:leq?|geq?|neq?|leqslant|geqslant)(?![A-Za-z])|<|>|=")


def split_top_level(s: str, separator: re.Pattern = _LIST_SEPARATOR) -> list[str]:
    """Split ``s`` at separators that are outside every bracket: ``(1,2), [3,4)`` -> two parts."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0:
            m = separator.match(s, i)
            if m and m.end() > i:
                parts.append(s[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _split_relations(s: str) -> tuple[list[str], list[str]]:
    """``1 < x \\le 3`` -> (['1', 'x', '3'], ['<', '\\le'])."""
    terms, ops, depth, start, i = [], [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and c in "<>=!\\":
            m = _RELATION.match(s, i)
            if m:
                terms.append(s[start:i].strip())
                ops.append(m.group())
                start = i = m.end()
                continue
        i += 1
    terms.append(s[start:].strip())
    return terms, ops


def _outer_pair(s: str) -> tuple[str, str, str] | None:
    """``(a, b]`` -> ('(', 'a, b', ']') when the first bracket closes at the very end."""
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    depth = 0
    for i, c in enumerate(s):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None
    return (s[0], s[1:-1], s[-1]) if depth == 0 else None


# ---------------------------------------------------------------- values

_EMPTY_SET = re.compile(r"^(?:\\emptyset|\\varnothing|\\\{\s*\\\}|\{\s*\})$")
_REALS = re.compile(r"^(?:\\mathbb\s*\{?R\}?|\\R|\\mathbf\{R\}|\\text\{R\})$")
_MEMBERSHIP = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\\in(?![A-Za-z])\s*")
_SET_BRACES = re.compile(r"^\\\{(.*)\\\}$", re.S)
_MATRIX_ENV = re.compile(
    r"^[(\[]?\s*\\begin\{([pbvBV]?matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}\s*[)\]]?$", re.S
)
_ROW_BREAK = re.compile(r"\\\\(?:\[[^\]]*\])?")
_LEADING_WORDS = re.compile(r"^(?:either|both|only|just)\s+", re.I)
MAX_ITEMS = 100  # more values than any gold has: an enumeration, not an answer
_INFINITY = ("\\infty", "+\\infty", "-\\infty", "inf", "-inf", "+inf")


@lru_cache(maxsize=2048)
def parse_value(s: str) -> Value | None:
    """Parse a normalized final answer; None when it is not a well-formed answer.

    Cached: extraction (do two statements agree?) and judging parse the same answers.
    """
    s = s.strip()
    if not s:
        return None
    if _MATRIX_ENV.match(s):
        return _parse_matrix(s)
    quantity = parse_quantity(s)  # before splitting: "March 15, 2024", "3 hours, 20 minutes"
    if quantity is not None:
        return quantity
    if s[0] == "(" and math_bignum.parse_numeric(s) is not None:
        return parse_scalar(s)  # ((((1+1)))): plain arithmetic may nest deeper than any structure
    parts = [p for p in split_top_level(s) if p]
    if len(parts) > MAX_ITEMS:
        return None
    if len(parts) > 1:
        items = [_parse_item(p) for p in parts]
        if any(item is None for item in items):
            return None
        return Collection("list", tuple(items))
    return _parse_item(s)


def _parse_item(s: str, depth: int = 0) -> Value | None:
    s = _LEADING_WORDS.sub("", s.strip()).strip()
    if not s or depth > 8:
        return None
    if _MATRIX_ENV.match(s):
        return _parse_matrix(s)
    for pm in ("\\pm", "\\mp"):
        if pm in s and s.count(pm) == 1:  # a \pm b: the two values
            plus, minus = (s.replace(pm, "+", 1), s.replace(pm, "-", 1))
            items = (_parse_item(plus, depth + 1), _parse_item(minus, depth + 1))
            return Collection("set", items) if None not in items else None
    if "\\approx" in s:
        left, _, right = s.partition("\\approx")
        left_value = _parse_item(left, depth + 1) if left.strip() else None
        if left_value is None or (isinstance(left_value, Scalar) and is_name(left_value.expr)):
            return _parse_item(right.split("\\approx")[0], depth + 1)
        return left_value
    s = _MEMBERSHIP.sub("", s)
    if _EMPTY_SET.match(s):
        return Collection("set", ())
    if _REALS.match(s):
        return Intervals((Interval(-sympy.oo, sympy.oo, False, False),))
    m = _SET_BRACES.match(s)
    if m and braces_balanced(m.group(1)):
        inner = [p for p in split_top_level(m.group(1)) if p]
        if len(inner) > MAX_ITEMS:
            return None
        items = tuple(_parse_item(p, depth + 1) for p in inner)
        return Collection("set", items) if None not in items else None
    union = split_top_level(s, _UNION_SEPARATOR)
    if len(union) > 1:
        pieces = [_parse_item(p, depth + 1) for p in union]
        if all(isinstance(p, Intervals) for p in pieces):
            return Intervals(tuple(part for p in pieces for part in p.parts))
        return None
    pair = _outer_pair(s)
    if pair:
        return _parse_bracketed(*pair, depth=depth)
    terms, ops = _split_relations(s)
    if ops:
        return _parse_relation(terms, ops, depth)
    return parse_scalar_or_text(s)



def _parse_bracketed(open_: str, inner: str, close: str, depth: int) -> Value | None:
    parts = split_top_level(inner, _COORDINATE_SEPARATOR)
    if len(parts) == 1:
        item = _parse_item(inner, depth + 1)
        if open_ + close == "()":
            return item  # redundant parentheses
        return Collection("tuple", (item,)) if open_ + close == "[]" and item is not None else None
    infinite = any(p.replace(" ", "") in _INFINITY for p in parts)
    nested = any(_is_bracketed_list(p) for p in parts)  # [[1, 2], [3, 4]]: rows, not an interval
    if len(parts) == 2 and (open_ + close != "()" or infinite) and not nested:
        lo, hi = (_endpoint(p) for p in parts)
        if lo is None or hi is None:
            return None
        lo_closed = open_ == "[" and lo.is_finite is not False  # an infinite end is always open
        hi_closed = close == "]" and hi.is_finite is not False
        return Intervals((Interval(lo, hi, lo_closed, hi_closed),))
    if open_ + close not in ("()", "[]"):
        return None
    items = tuple(_parse_item(p, depth + 1) for p in parts)
    return Collection("tuple", items) if None not in items else None


def _is_bracketed_list(s: str) -> bool:
    pair = _outer_pair(s)
    return pair is not None and len(split_top_level(pair[1], _COORDINATE_SEPARATOR)) > 1


def _endpoint(s: str) -> sympy.Basic | None:
    compact = s.replace(" ", "")
    if compact in ("\\infty", "+\\infty", "inf", "+inf", "\\infin"):
        return sympy.oo
    if compact in ("-\\infty", "-inf", "-\\infin"):
        return -sympy.oo
    value = parse_scalar_or_text(s)
    return value.expr if isinstance(value, Scalar) and value.big is None else None


def _parse_relation(terms: list[str], ops: list[str], depth: int) -> Value | None:
    if any(not t for t in terms):
        return None
    kinds = {_op_kind(op) for op in ops}
    if kinds == {"eq"}:
        sides = tuple(_parse_item(t, depth + 1) for t in terms)
        return Equation(sides) if None not in sides else None
    if "eq" in kinds or len(terms) > 3:
        return None
    values = [parse_scalar_or_text(t) for t in terms]
    if not all(isinstance(v, Scalar) for v in values):
        return None
    names = [i for i, v in enumerate(values) if isinstance(v.expr, sympy.Symbol)]
    if kinds == {"ne"}:
        if len(terms) != 2 or not names:
            return None
        point = values[1 - names[0]].expr
        return Intervals((Interval(-sympy.oo, point, False, False), Interval(point, sympy.oo, False, False)))
    if "ne" in kinds:
        return None
    if len(terms) == 2:
        if names == [0]:  # x < a
            op, bound = ops[0], values[1].expr
        elif names == [1]:  # a < x  ==  x > a
            op, bound = _flip(ops[0]), values[0].expr
        else:
            return None
        lower = _op_kind(op) in ("gt", "ge")
        closed = _op_kind(op) in ("ge", "le")
        if lower:
            return Intervals((Interval(bound, sympy.oo, closed, False),))
        return Intervals((Interval(-sympy.oo, bound, False, closed),))
    if names != [1] or _direction(ops[0]) != _direction(ops[1]):
        return None
    a, b = values[0].expr, values[2].expr
    if _direction(ops[0]) == "down":  # b > x > a
        return Intervals((Interval(b, a, _op_kind(ops[1]) == "ge", _op_kind(ops[0]) == "ge"),))
    return Intervals((Interval(a, b, _op_kind(ops[0]) == "le", _op_kind(ops[1]) == "le"),))


def _op_kind(op: str) -> str:
    op = op.replace("slant", "")
    return {"=": "eq", "<": "lt", ">": "gt", "<=": "le", ">=": "ge", "!=": "ne", "\\le": "le", "\\leq": "le",
            "\\ge": "ge", "\\geq": "ge", "\\ne": "ne", "\\neq": "ne"}.get(op, "?")


def _flip(op: str) -> str:
    return {"lt": ">", "gt": "<", "le": ">=", "ge": "<="}[_op_kind(op)]


def _direction(op: str) -> str:
    return "up" if _op_kind(op) in ("lt", "le") else "down"


def _parse_matrix(s: str) -> Matrix | None:
    m = _MATRIX_ENV.match(s)
    body = m.group(2).replace("\\hline", "")
    rows = [r for r in _ROW_BREAK.split(body) if r.strip()]
    parsed = []
    for row in rows:
        cells = tuple(_parse_item(c) for c in row.split("&"))
        if None in cells:
            return None
        parsed.append(cells)
    if not parsed or len({len(r) for r in parsed}) != 1:
        return None
    return Matrix(tuple(parsed))


# ---------------------------------------------------------------- scalars and text

_TEXTY = re.compile(r"^[A-Za-z][A-Za-z0-9 ,.'\-!?:]*$")
_WRAPPED_TEXT = re.compile(r"^\\text\{[^{}]*[A-Za-z]{2}[^{}]*\}$")


def parse_scalar_or_text(s: str) -> Scalar | Text | None:
    s = s.strip()
    words_only = unwrap_text(s)
    stated = _NOT_BUT.fullmatch(words_only)
    if stated:  # "not 7 but 12" states 12 (and "not red but blue" states blue)
        return parse_scalar_or_text(stated.group(1))
    if _TEXTY.match(words_only) and (_WRAPPED_TEXT.match(s) or _looks_like_words(words_only)):
        n = number_word_value(words_only)
        if n is not None:
            return Scalar(sympy.Integer(n), s)
        return Text(normalize_text(words_only))
    return parse_scalar(s)


def _looks_like_words(s: str) -> bool:
    words = re.findall(r"[A-Za-z]+", s)
    if len(words) == 1:
        return len(words[0]) >= 2 and words[0].lower() not in MATH_WORDS and not re.search(r"\d", s)
    return any(len(w) >= 3 and w.lower() not in MATH_WORDS for w in words)


_NUMBER_LITERAL = re.compile(
    r"(?P<sign>[+-]?)\s*(?P<mantissa>\d+(?:\.\d*)?|\.\d+)"
    r"(?:\s*(?:[eE](?P<exp1>[+-]?\d+)"  # 1.5e3
    r"|(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*(?:\{\s*(?P<exp2>[+-]?\d+)\s*\}|(?P<exp3>\d))))?"  # 1.5 \times 10^{3}
)
_SLASH_FRACTION = re.compile(r"(?P<sign>[+-]?)\s*(?P<num>\d+)\s*/\s*(?P<den>\d+)")
_LATEX_FRACTION = re.compile(r"(?P<sign>[+-]?)\s*\\frac\s*\{\s*(?P<num>[+-]?\d+)\s*\}\s*\{\s*(?P<den>[+-]?\d+)\s*\}")
_REPEATING_DECIMAL = re.compile(
    r"(?P<sign>[+-]?)\s*(?P<whole>\d*)\.(?P<fixed>\d*)\\overline\s*\{\s*(?P<period>\d+)\s*\}"
)
_MIXED_NUMBER = re.compile(  # 2\frac{1}{2} is two and a half, as in MATH answers
    r"(?P<sign>[+-]?)\s*(?P<whole>\d+)\s*\\frac\s*\{\s*(?P<num>\d+)\s*\}\s*\{\s*(?P<den>\d+)\s*\}"
)


_QUALIFIER = re.compile(  # words that change what a value says: "not 5", "7 or more", "at least 7"
    r"(?<![\\A-Za-z])(?:not|no|never|none|nor|except|excluding|but|or|least|most|more|less|fewer|than|maybe|perhaps"
    r"|possibly|probably|either|neither|unless|if|impossible|possible|cannot|can't|isn't|wrong|incorrect|between"
    r"|any|up|greater|larger|smaller|bigger|below|above|exceeds|exceeding|beyond|until)(?![A-Za-z])",
    re.I,
)
_NEGATED_ASIDE = re.compile(r"(.*\S)\s*\(\s*not\s+[^()]*\)", re.I | re.S)  # "3 (not 2)": states 3
_NOT_BUT = re.compile(r"\s*not\s+[^,;]*?,?\s+but\s+(.+)", re.I | re.S)  # "not 7 but 12": states 12


def parse_scalar(s: str) -> Scalar | None:
    """A number or expression, units and currency dropped; None if it does not parse.

    Units go, but never a word that changes the value's meaning (``not 5``, ``7 or more``,
    ``at least 7``, ``5 is not possible``): such an answer does not state a value.
    """
    words = unwrap_text(s)
    if _QUALIFIER.search(words):
        stated = _NEGATED_ASIDE.fullmatch(words) or _NOT_BUT.fullmatch(words)
        if stated and not _QUALIFIER.search(stated.group(1)):
            return parse_scalar(stated.group(1))
        return None
    s, percent = strip_units(s)
    if not s:
        return None
    number = _plain_number(s, percent)
    if number is not None:
        return number
    n = number_word_value(s) if s.isalpha() else None
    if n is not None:
        return Scalar(sympy.Integer(n), s, percent=percent)
    based = _based_number(s)
    if based is not None:
        return based
    s = _based_to_decimal(s) if "_" in s else s
    arithmetic = _arithmetic(s, percent)
    if arithmetic is not None:
        return arithmetic
    try:
        expr = latex_to_sympy(s)
    except Exception:
        return None
    if expr is None:
        return None
    return Scalar(expr, s, percent=percent)


_BASED_NUMBER = re.compile(
    r"\(?\s*\{?\s*(?P<digits>[0-9A-Za-z]+)\s*\}?\s*\)?\s*_\s*(?:\{\s*\(?\s*(?P<base>\d{1,2})\s*\)?\s*\}|(?P<base1>\d))"
)
_DIGIT_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_BASED_IN_EXPRESSION = re.compile(r"(?<![\w\\])\(?([0-9A-Z]+)\)?_\{?(\d{1,2})\}?(?![\w}])")
_BIG_BITS = 14_000  # above ~4200 decimal digits a number is compared by verifiers.math_bignum


def _based_number(s: str) -> Scalar | None:
    """``1011_2``, ``123_{7}``, ``(100)_3``, ``1A_{16}``: digits in a base from 2 to 36 (``a_7`` is a name)."""
    m = _BASED_NUMBER.fullmatch(s)
    if not m:
        return None
    digits, base = m.group("digits"), int(m.group("base") or m.group("base1"))
    if not _valid_digits(digits, base):
        return None
    digits = digits.upper()
    return Scalar(sympy.Integer(int(digits, base)), s, base=(digits.lstrip("0") or "0", base))


def _valid_digits(digits: str, base: int) -> bool:
    """Digits of a number in ``base``: ``129`` is none in base 7; letters only as upper-case digits above
    base 10 (``FF_{16}``), so that ``a_{12}`` stays a name."""
    if not 2 <= base <= 36 or len(digits) > 200:
        return False
    if not any(c.isdigit() for c in digits) and not (digits.isupper() and base > 10):
        return False
    return all(_DIGIT_VALUES.get(c.upper(), 99) < base for c in digits)


def _based_to_decimal(s: str) -> str:
    """``10_2 + 11_2`` -> ``2 + 3``: numbers in a base inside a larger expression, for the LaTeX parser."""
    def decimal(m: re.Match) -> str:
        return str(int(m.group(1), int(m.group(2)))) if _valid_digits(m.group(1), int(m.group(2))) else m.group()

    return _BASED_IN_EXPRESSION.sub(decimal, s)


def _arithmetic(s: str, percent: bool) -> Scalar | None:
    """Numbers and arithmetic only (``2^{10}``, ``5!``, ``2^{2^{30}}``, ``(10^6)!``), read by ``math_bignum``.

    A value that is cheap to compute becomes an exact number at once (no LaTeX parser needed);
    a huge one keeps its tree (``Scalar.big``), for exact comparison without evaluating it.
    Anything else (radicals, fractional powers, 1/0) is left to the LaTeX parser.
    """
    tree = math_bignum.parse_numeric(s)
    if tree is None:
        return None
    value = math_bignum.exact_value(tree)
    if value is not None:
        big = tree if max(value.numerator.bit_length(), value.denominator.bit_length()) > _BIG_BITS else None
        return Scalar(sympy.Rational(value.numerator, value.denominator), s, percent=percent, big=big)
    if math_bignum.is_huge(tree):
        return Scalar(math_bignum.to_sympy(tree), s, percent=percent, big=tree)
    return None


def _plain_number(s: str, percent: bool) -> Scalar | None:
    m = _NUMBER_LITERAL.fullmatch(s)
    if m:
        mantissa = m.group("mantissa")
        exponent = int(m.group("exp1") or m.group("exp2") or m.group("exp3") or 0)
        if abs(exponent) > 1000 or len(mantissa) > math_bignum.MAX_DIGITS:
            return None
        value = math_bignum.fraction_from_decimal(mantissa) * Fraction(10) ** exponent
        if m.group("sign") == "-":
            value = -value
        decimals = len(mantissa.partition(".")[2])
        is_decimal = "." in mantissa or exponent < 0
        digits = mantissa.replace(".", "").lstrip("0")
        ulp = sympy.Rational(10) ** (exponent - decimals) if is_decimal else None
        big = math_bignum.Num(value) if max(value.numerator.bit_length(), value.denominator.bit_length()) > _BIG_BITS else None
        return Scalar(sympy.Rational(value.numerator, value.denominator), s, ulp, len(digits), percent, big=big)
    m = _REPEATING_DECIMAL.fullmatch(s)
    if m:  # 0.1\overline{6} = 1/6
        fixed, period = m.group("fixed"), m.group("period")
        value = Fraction(int(m.group("whole") or 0)) + Fraction(int(fixed or 0), 10 ** len(fixed))
        value += Fraction(int(period), 10 ** len(fixed) * (10 ** len(period) - 1))
        value = -value if m.group("sign") == "-" else value
        return Scalar(sympy.Rational(value.numerator, value.denominator), s, percent=percent)
    for pattern in (_SLASH_FRACTION, _LATEX_FRACTION, _MIXED_NUMBER):
        m = pattern.fullmatch(s)
        if m:
            den = int(m.group("den"))
            if den == 0:
                return None
            value = Fraction(int(m.group("num")), den) + int(m.groupdict().get("whole") or 0)
            if m.group("sign") == "-":
                value = -value
            return Scalar(sympy.Rational(value.numerator, value.denominator), s, percent=percent)
    return None
