"""Reading plain arithmetic (numbers, ``+ - \\cdot / ^ !``, ``\\frac``, ``\\binom``) into a tree.

A recursive-descent parser that knows nothing but that arithmetic, so it never evaluates
anything on its own and its cost is linear in the input; ``verifiers.math_bignum`` decides
equality on the trees it builds. Digit strings of any length are converted in pieces, below
Python's limit on int <-> decimal string conversion (4300 digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

MAX_DIGITS = 200_000  # longest integer literal read
MAX_TOKENS = 400  # longer arithmetic is not a final answer (and would make deep trees)


@dataclass(frozen=True)
class Num:
    """An exact rational."""

    value: Fraction


@dataclass(frozen=True)
class Op:
    """``kind`` applied to ``args``: add, mul, div (2 args), neg, fact (1), pow, binom (2)."""

    kind: str
    args: tuple["Node", ...]


Node = Union[Num, Op]


# ---------------------------------------------------------------- digits <-> int without the 4300-digit limit


def int_from_digits(digits: str) -> int:
    """``int(digits)`` for any length, in pieces below Python's conversion limit (divide and conquer)."""
    if len(digits) <= 4000:
        return int(digits)
    half = len(digits) // 2
    high, low = digits[: len(digits) - half], digits[len(digits) - half :]
    return int_from_digits(high) * 10**half + int_from_digits(low)


def fraction_from_decimal(text: str) -> Fraction:
    """``Fraction("123.45")`` for literals of any length."""
    sign = -1 if text.startswith("-") else 1
    whole, _, decimals = text.lstrip("+-").partition(".")
    numerator = int_from_digits((whole + decimals).lstrip("0") or "0")
    return Fraction(sign * numerator, 10 ** len(decimals))


# ---------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<cmd>\\(?:cdot|times|div|frac|binom|left|right)(?![A-Za-z]))|(?P<op>\*\*|[-+*/^!(){}\[\]]))"
)


def parse_numeric(text: str) -> Node | None:
    """The arithmetic expression ``text`` as a tree; None if it holds anything but numbers and arithmetic."""
    if len(text) > MAX_DIGITS + 1000:
        return None
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip():
                return None
            break
        pos = m.end()
        if m.group("cmd") in ("\\left", "\\right"):
            continue
        op = "^" if m.group("op") == "**" else m.group("cmd") or m.group("op")  # 2**30, as models type it
        tokens.append(("num", m.group("num")) if m.group("num") else ("op", op))
    if not tokens or len(tokens) > MAX_TOKENS:
        return None
    parser = _Parser(tokens)
    try:
        node = parser.expr()
    except (_ParseError, RecursionError):
        return None
    return node if parser.i == len(tokens) else None


class _ParseError(Exception):
    pass


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|implicit) unary)* ;
    unary := ('-'|'+') unary | power ; power := postfix ('^' exponent)? ; postfix := atom '!'*"""

    _MULTIPLY = {"*", "\\cdot", "\\times"}
    _DIVIDE = {"/", "\\div"}
    _OPENERS = {"(": ")", "{": "}", "[": "]"}

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise _ParseError
        self.i += 1
        return token

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > 30:  # deeper is no answer (and a way to make parsers slow)
            raise _ParseError
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            sign = self.take()[1]
            right = self.term()
            node = Op("add", (node, right if sign == "+" else Op("neg", (right,))))
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.unary()
        while True:
            token = self.peek()
            if token is None:
                return node
            if token[1] in self._MULTIPLY:
                self.take()
                node = Op("mul", (node, self.unary()))
            elif token[1] in self._DIVIDE:
                self.take()
                node = Op("div", (node, self.unary()))
            elif token[1] in ("(", "\\frac", "\\binom"):  # 2(3+4), 2\frac{1}{2} is a product here
                node = Op("mul", (node, self.unary()))
            else:
                return node

    def unary(self) -> Node:
        token = self.peek()
        if token in (("op", "-"), ("op", "+")):
            self.take()
            operand = self.unary()
            return Op("neg", (operand,)) if token[1] == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek() == ("op", "^"):
            self.take()
            token = self.peek()
            if token is None:
                raise _ParseError
            if token[1] in self._OPENERS:
                exponent = self.group()
            elif token[0] == "num":  # 2^10 is 2^1 followed by 0 in LaTeX
                self.take()
                exponent = Num(Fraction(int(token[1][0])))
                if len(token[1]) > 1:
                    raise _ParseError  # ambiguous: leave it to the LaTeX parser
            else:
                raise _ParseError
            node = Op("pow", (base, exponent))
            while self.peek() == ("op", "!"):
                self.take()
                node = Op("fact", (node,))
            return node
        return base

    def postfix(self) -> Node:
        node = self.atom()
        while self.peek() == ("op", "!"):
            self.take()
            node = Op("fact", (node,))
        return node

    def group(self) -> Node:
        opener = self.take()[1]
        if opener not in self._OPENERS:
            raise _ParseError
        node = self.expr()
        self.take(self._OPENERS[opener])
        return node

    def atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise _ParseError
        if token[0] == "num":
            self.take()
            if len(token[1]) > MAX_DIGITS:
                raise _ParseError
            return Num(fraction_from_decimal(token[1]))
        if token[1] in self._OPENERS:
            return self.group()
        if token[1] in ("\\frac", "\\binom"):
            self.take()
            first, second = self.group(), self.group()
            return Op("div" if token[1] == "\\frac" else "binom", (first, second))
        raise _ParseError
