"""Exact decisions about numbers too large to write out: ``2^{2^{30}}``, ``1000000!``, 5000-digit integers.

A numeric answer built from integers with ``+ - \\cdot / ^ !`` and ``\\frac``/``\\binom`` is
read into a small expression tree by ``verifiers.math_arithmetic.parse_numeric``. Two trees
are compared without evaluating what cannot be evaluated (``decide``):

1. the same tree after folding the parts that are cheap to compute: equal;
2. both cheap to compute (``MAX_EXACT_BITS``): compare the exact values;
3. signs, then ``log2 |value|`` as an interval (mpmath, 80 bits, the bound widened by a
   margin): disjoint intervals are a proof of inequality (``1000000!`` vs ``999999!``);
4. residues modulo fixed primes near 2^61, computed exactly (``pow`` with exponents reduced
   by Euler's theorem, ``n! = 0 mod p`` once n >= p): any difference is a proof of
   inequality; agreement modulo all of them is taken as equality, the same argument as
   testing an identity at random points (the chance that different values agree modulo
   three 61-bit primes is below 2^-180 unless they were built to).

Every step has a cost bound; a step that cannot decide within it answers None (undecided).
Python's limit on int <-> decimal string conversion (4300 digits) is respected: digit
strings are converted in pieces, and huge values are never printed in decimal.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import mpmath
import sympy

from verifiers.math_arithmetic import MAX_DIGITS, Node, Num, Op, fraction_from_decimal, int_from_digits, parse_numeric

__all__ = ["MAX_DIGITS", "Node", "Num", "Op", "canonical", "decide", "exact_value", "folded", "fraction_from_decimal",
           "from_sympy", "int_from_digits", "is_huge", "parse_numeric", "residue", "to_sympy"]

MAX_EXACT_BITS = 1 << 22  # a value of up to ~1.26 million decimal digits is computed exactly
MAX_EXACT_FACTORIAL = 20_000  # math.factorial(20000) takes ~10 ms; 10^5 takes ~0.3 s
MAX_RESIDUE_FACTORIAL = 2_000_000  # n! mod p by a loop of n multiplications
_PRIMES = (2305843009213693951, 2305843009213693921, 2305843009213693907)  # 2^61 - 1 and two below
_LOG_PREC = 80
_LOG_MARGIN = mpmath.mpf(2) ** -60  # relative widening of every log bound (mpmath rounds to ~2^-80)


def canonical(node: Node) -> str:
    """One decimal-free spelling per value, for majority voting: equal values give the same string
    (residues modulo the fixed primes), different ones almost surely not. Not for parsing."""
    residues = [residue(node, p) for p in _PRIMES]
    if None in residues:
        return "<huge number>"
    return "<huge number " + " ".join(f"{r:x}" for r in residues) + ">"


# ---------------------------------------------------------------- exact values, when cheap


@lru_cache(maxsize=2048)
def _bits(node: Node) -> float:
    """An upper bound on the bits of the exact value (numerator and denominator together); inf if huge."""
    if isinstance(node, Num):
        return node.value.numerator.bit_length() + node.value.denominator.bit_length()
    a = [_bits(x) for x in node.args]
    if node.kind in ("add", "mul", "div"):
        return a[0] + a[1] + 1
    if node.kind == "neg":
        return a[0]
    exact = [exact_value(x) for x in node.args]
    if node.kind == "fact":
        n = exact[0]
        if n is None or n.denominator != 1 or n < 0:
            return math.inf
        return (float(n) * max(1.0, math.log2(float(n) + 1))) if n > MAX_EXACT_FACTORIAL else n * 16.0
    if node.kind == "binom":
        n = exact[0]
        return math.inf if n is None or n > MAX_EXACT_FACTORIAL else float(n) * 2 + 2
    # pow
    e = exact[1]
    if e is None or e.denominator != 1:
        return math.inf
    return a[0] * float(abs(e)) + 1


def exact_value(node: Node) -> Fraction | None:
    """The exact value, if it is a rational of at most ``MAX_EXACT_BITS`` bits that is cheap to compute."""
    return _exact(node)


@lru_cache(maxsize=2048)
def _exact(node: Node) -> Fraction | None:
    if isinstance(node, Num):
        return node.value
    if _bits(node) > MAX_EXACT_BITS:
        return None
    args = [_exact(x) for x in node.args]
    if any(a is None for a in args):
        return None
    try:
        if node.kind == "add":
            return args[0] + args[1]
        if node.kind == "mul":
            return args[0] * args[1]
        if node.kind == "div":
            return args[0] / args[1] if args[1] != 0 else None
        if node.kind == "neg":
            return -args[0]
        if node.kind == "fact":
            n = args[0]
            if n.denominator != 1 or n < 0 or n > MAX_EXACT_FACTORIAL:
                return None
            return Fraction(math.factorial(int(n)))
        if node.kind == "binom":
            n, k = args
            if n.denominator != 1 or k.denominator != 1 or n < 0 or n > MAX_EXACT_FACTORIAL:
                return None
            return Fraction(math.comb(int(n), int(k))) if k >= 0 else Fraction(0)
        base, e = args  # pow
        if e.denominator != 1 or (base == 0 and e < 0):
            return None
        return base ** int(e)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def is_huge(node: Node) -> bool:
    """Too large to compute, yet integral wherever that matters: powers with integer exponents, factorials
    of integers (so ``4^{1/2}`` or ``1/0`` are not huge, only unevaluated)."""
    try:
        return _exact(node) is None and _bits(node) > MAX_EXACT_BITS and _integral(node)
    except RecursionError:
        return False


def _integral(node: Node) -> bool:
    if isinstance(node, Num):
        return True
    if node.kind in ("pow", "fact", "binom"):
        for arg in node.args[1:] if node.kind == "pow" else node.args:
            value = _exact(arg)
            if value is None:
                if not is_huge(arg):
                    return False
            elif value.denominator != 1 or value < 0:
                return False
    return all(_integral(x) for x in node.args)


def folded(node: Node) -> Node:
    """``node`` with every cheap subtree replaced by its value, so that equal spellings look alike."""
    value = _exact(node)
    if value is not None:
        return Num(value)
    if isinstance(node, Num):
        return node
    return Op(node.kind, tuple(folded(x) for x in node.args))


# ---------------------------------------------------------------- sign and size


def _sign(node: Node) -> int | None:
    value = _exact(node)
    if value is not None:
        return (value > 0) - (value < 0)
    if isinstance(node, Num):
        return None
    s = [_sign(x) for x in node.args]
    if node.kind == "neg":
        return None if s[0] is None else -s[0]
    if node.kind in ("mul", "div"):
        return None if None in s else s[0] * s[1]
    if node.kind == "fact":
        return 1 if s[0] == 1 or s[0] == 0 else None
    if node.kind == "binom":
        return 1 if s[0] == 1 and s[1] in (0, 1) else None
    if node.kind == "pow":
        if s[0] == 1:
            return 1
        e = _exact(node.args[1])
        if s[0] == -1 and e is not None and e.denominator == 1:
            return 1 if e.numerator % 2 == 0 else -1
        return None
    # add: a known sign only when the larger term is known
    if s[0] == s[1] and s[0] is not None:
        return s[0]
    la, lb = _log2_abs(node.args[0]), _log2_abs(node.args[1])
    if None in (la, lb, s[0], s[1]):
        return None
    if la[0] > lb[1]:
        return s[0]
    if lb[0] > la[1]:
        return s[1]
    return None


def _widen(lo, hi):
    return lo - abs(lo) * _LOG_MARGIN - _LOG_MARGIN, hi + abs(hi) * _LOG_MARGIN + _LOG_MARGIN


_LOG_LIMIT = mpmath.mpf(2) ** 64  # log2 values beyond this (towers of towers) are not bounded here


def _log2_abs(node: Node):
    """(lo, hi) with lo <= log2 |value| <= hi, or None when unknown (or the value may be 0)."""
    with mpmath.workprec(_LOG_PREC):
        return _log2_abs_inner(node)


def _log2_abs_inner(node: Node):
    value = _exact(node)
    if value is not None:
        if value == 0:
            return None
        x = mpmath.log(mpmath.mpf(abs(value.numerator)), 2) - mpmath.log(mpmath.mpf(value.denominator), 2)
        return _widen(x, x)
    if isinstance(node, Num):
        return None
    if node.kind == "neg":
        return _log2_abs_inner(node.args[0])
    if node.kind in ("mul", "div"):
        a, b = _log2_abs_inner(node.args[0]), _log2_abs_inner(node.args[1])
        if a is None or b is None:
            return None
        return _widen(a[0] + b[0], a[1] + b[1]) if node.kind == "mul" else _widen(a[0] - b[1], a[1] - b[0])
    if node.kind == "fact":
        n = _exact(node.args[0])
        if n is None or n.denominator != 1 or n < 2:
            return None
        x = mpmath.loggamma(mpmath.mpf(n.numerator) + 1) / mpmath.log(2)
        return _widen(x, x)
    if node.kind == "pow":
        base = _log2_abs_inner(node.args[0])
        e = _exact(node.args[1])
        if base is None:
            return None
        if e is not None:
            lo, hi = sorted((base[0] * mpmath.mpf(e.numerator) / e.denominator, base[1] * mpmath.mpf(e.numerator) / e.denominator))
            return _widen(lo, hi) if abs(hi) < _LOG_LIMIT else None
        if base[0] <= 0:  # |base| <= 1 with a huge exponent: not bounded here
            return None
        le = _log2_abs_inner(node.args[1])
        if le is None or _sign(node.args[1]) != 1 or le[1] > 64:
            return None
        lo, hi = base[0] * mpmath.mpf(2) ** le[0], base[1] * mpmath.mpf(2) ** le[1]
        return _widen(lo, hi) if hi < _LOG_LIMIT else None
    if node.kind == "add":
        a, b = _log2_abs_inner(node.args[0]), _log2_abs_inner(node.args[1])
        sa, sb = _sign(node.args[0]), _sign(node.args[1])
        if a is None or b is None or sa is None or sb is None:
            return None
        if a[0] < b[0]:
            a, b = b, a
        gap_lo = a[0] - b[1]  # the larger term beats the smaller by at least this many bits
        if sa == sb:
            return _widen(a[0], a[1] + mpmath.log(1 + mpmath.mpf(2) ** -max(gap_lo, 0), 2))
        if gap_lo < 2:
            return None  # possible cancellation
        return _widen(a[0] + mpmath.log(1 - mpmath.mpf(2) ** -gap_lo, 2), a[1])
    return None  # binom of huge arguments


# ---------------------------------------------------------------- residues


@lru_cache(maxsize=256)
def _totient(m: int) -> int:
    return int(sympy.totient(m))


def residue(node: Node, m: int) -> int | None:
    """The value modulo ``m`` (an integer-valued node; None when that cannot be computed cheaply)."""
    try:
        return _residue(node, m)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


@lru_cache(maxsize=4096)
def _residue(node: Node, m: int) -> int | None:
    if m == 1:
        return 0
    value = _exact(node)
    if value is not None:
        if value.denominator == 1:
            return value.numerator % m
        if math.gcd(value.denominator, m) != 1:
            return None
        return value.numerator * pow(value.denominator, -1, m) % m
    if isinstance(node, Num):
        return None
    if node.kind in ("add", "mul", "neg"):
        r = [_residue(x, m) for x in node.args]
        if None in r:
            return None
        return (r[0] + r[1]) % m if node.kind == "add" else (r[0] * r[1]) % m if node.kind == "mul" else -r[0] % m
    if node.kind == "div":
        a, b = _residue(node.args[0], m), _residue(node.args[1], m)
        if a is None or b is None or math.gcd(b, m) != 1:
            return None
        return a * pow(b, -1, m) % m
    if node.kind == "fact":
        return _factorial_residue(node.args[0], m)
    if node.kind == "binom":
        return None
    # pow: base^e mod m with e >= 0 an integer too large to compute
    if _sign(node.args[1]) != 1:
        return None
    b = _residue(node.args[0], m)
    if b is None:
        return None
    e = _exact(node.args[1])
    if e is not None:
        return pow(b, int(e), m) if e.denominator == 1 else None
    # e is huge (far more than log2 m): b^e = b^(phi + (e mod phi)) mod m (Euler, generalized)
    phi = _totient(m)
    r = _residue(node.args[1], phi)
    if r is None:
        return None
    return pow(b, phi + r, m)


def _factorial_residue(arg: Node, m: int) -> int | None:
    n = _exact(arg)
    if n is None:
        return 0 if _sign(arg) == 1 else None  # too large to compute: far more than m, so m divides n!
    if n.denominator != 1 or n < 0:
        return None
    n = int(n)
    if n >= m:
        return 0
    if n > MAX_RESIDUE_FACTORIAL:
        return None
    return _factorial_mod(n, m)


_CHECKPOINT = 1 << 15
_FACTORIAL_CHECKPOINTS: dict[int, list[int]] = {}  # m -> [(k * _CHECKPOINT)! mod m for k = 0, 1, ...]


def _factorial_mod(n: int, m: int) -> int:
    """n! mod m, resuming from the nearest checkpoint below n (two nearby factorials share the work)."""
    points = _FACTORIAL_CHECKPOINTS.setdefault(m, [1 % m])
    while len(points) * _CHECKPOINT <= n:
        start = (len(points) - 1) * _CHECKPOINT
        points.append(_product_mod(points[-1], start + 1, start + _CHECKPOINT, m))
    k = n // _CHECKPOINT
    return _product_mod(points[k], k * _CHECKPOINT + 1, n, m)


def _product_mod(acc: int, first: int, last: int, m: int) -> int:
    """acc * first * (first + 1) * ... * last mod m, 32 factors per reduction (fewer Python-level steps)."""
    first = max(first, 1)
    for start in range(first, last + 1, 32):
        acc = acc * math.prod(range(start, min(start + 32, last + 1))) % m
    return acc


# ---------------------------------------------------------------- equality


def decide(a: Node, b: Node) -> bool | None:
    """Whether ``a`` and ``b`` have the same value: True, False, or None when it cannot be decided cheaply."""
    try:
        return _decide(a, b)
    except RecursionError:
        return None


def _decide(a: Node, b: Node) -> bool | None:
    fa, fb = folded(a), folded(b)
    if fa == fb:
        return True
    va, vb = _exact(fa), _exact(fb)
    if va is not None and vb is not None:
        return va == vb
    sa, sb = _sign(fa), _sign(fb)
    if sa is not None and sb is not None and sa != sb:
        return False
    la, lb = _log2_abs(fa), _log2_abs(fb)
    if la is not None and lb is not None and (la[1] < lb[0] or lb[1] < la[0]):
        return False
    agreed = 0
    for p in _PRIMES:
        ra, rb = residue(fa, p), residue(fb, p)
        if ra is None or rb is None:
            continue
        if ra != rb:
            return False
        agreed += 1
    return True if agreed >= 2 else None


def from_sympy(expr: sympy.Basic) -> Node | None:
    """A tree for a sympy expression made of rationals, sums, products, integer powers and factorials."""
    try:
        return _from_sympy(expr, 0)
    except RecursionError:
        return None


def _from_sympy(expr: sympy.Basic, depth: int) -> Node | None:
    if depth > 100:
        return None
    if expr.is_Rational:
        return Num(Fraction(int(expr.p), int(expr.q)))
    args = [_from_sympy(a, depth + 1) for a in expr.args]
    if any(a is None for a in args) or not args:
        return None
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        node = args[0]
        for a in args[1:]:
            node = Op("add" if isinstance(expr, sympy.Add) else "mul", (node, a))
        return node
    if isinstance(expr, sympy.Pow) and len(args) == 2:
        return Op("pow", tuple(args))
    if isinstance(expr, sympy.factorial) and len(args) == 1:
        return Op("fact", tuple(args))
    if isinstance(expr, sympy.binomial) and len(args) == 2:
        return Op("binom", tuple(args))
    return None


def to_sympy(node: Node) -> sympy.Basic:
    """An unevaluated sympy expression for ``node`` (cheap parts evaluated), for code that wants sympy."""
    value = _exact(node)
    if value is not None:
        return sympy.Rational(value.numerator, value.denominator)
    a = [to_sympy(x) for x in node.args]
    if node.kind == "add":
        return sympy.Add(*a, evaluate=False)
    if node.kind == "mul":
        return sympy.Mul(*a, evaluate=False)
    if node.kind == "div":
        return sympy.Mul(a[0], sympy.Pow(a[1], -1, evaluate=False), evaluate=False)
    if node.kind == "neg":
        return sympy.Mul(-1, a[0], evaluate=False)
    if node.kind == "fact":
        return sympy.factorial(a[0], evaluate=False)
    if node.kind == "binom":
        return sympy.binomial(a[0], a[1], evaluate=False)
    return sympy.Pow(a[0], a[1], evaluate=False)
