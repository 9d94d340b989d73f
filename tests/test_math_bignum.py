"""``verifiers.math_bignum``: exact decisions about numbers too large to write out.

The fast paths (folding, log bounds, residues) are checked against a slow, obviously
correct reference: exact Python integers, on random expressions small enough to compute,
with the exact-evaluation budget forced down so that ``decide`` must use the fast paths.
"""

from __future__ import annotations

import random
import sys
import time
from fractions import Fraction

import pytest

from verifiers import math_bignum
from verifiers.math_bignum import Num, Op, decide, exact_value, int_from_digits, parse_numeric


@pytest.mark.parametrize(
    "text, value",
    [
        ("2^{10}", 1024),
        ("5!", 120),
        ("\\binom{5}{2}", 10),
        ("3 \\times 10^{5}", 300000),
        ("-2^{2}", -4),
        ("2(3+4)", 14),
        ("\\frac{1}{2}", Fraction(1, 2)),
        ("2^{-3}", Fraction(1, 8)),
        ("\\left(1+2\\right)^{2}", 9),
        ("1.5 \\cdot 4", 6),
        ("2**(3+1)", 16),
    ],
)
def test_parse_numeric_small_values(text, value):
    assert exact_value(parse_numeric(text)) == value


@pytest.mark.parametrize("text", ["x^2", "\\sqrt{2}", "2^10", "\\pi", "1 2", "(1+2", "2^{}", "", "3:2"])
def test_parse_numeric_refuses_what_is_not_plain_arithmetic(text):
    assert parse_numeric(text) is None  # 2^10 is 2^1 then 0 in LaTeX: left to the LaTeX parser


def test_int_from_digits_beyond_the_conversion_limit():
    digits = "".join(random.Random(0).choice("0123456789") for _ in range(20_000))
    reference = 0
    for chunk in range(0, len(digits), 1000):  # Horner by chunks of 1000 digits: under the limit
        part = digits[chunk : chunk + 1000]
        reference = reference * 10 ** len(part) + int(part)
    assert int_from_digits(digits) == reference
    assert len(digits) > sys.get_int_max_str_digits() > 0  # the case the limit would refuse


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("2^{2^{30}}", "2^{1073741824}", True),
        ("2^{2^{30}}", "4^{2^{29}}", True),
        ("2^{2^{30}}", "2^{2^{31}}", False),
        ("2^{2^{30}}", "2^{2^{30}}+1", False),
        ("10^{10^{10}}", "100^{5 \\cdot 10^{9}}", True),
        ("10^{10^{10}}", "10^{10^{9}}", False),
        ("1000000!", "(10^6)!", True),
        ("1000000!", "999999!", False),
        ("1000000!", "1000000 \\cdot 999999!", True),
        ("9^{9^{9}}", "3^{2 \\cdot 9^{9}}", True),
        ("9^{9^{9}}", "3^{9^{9}}", False),
        ("2^{2^{2^{5}}}", "2^{2^{32}}", True),
        ("2^{2^{2^{30}}}", "4^{2^{2^{30}-1}}", True),
        ("2^{2^{2^{30}}}", "2^{2^{2^{30}}}+2", False),
        ("-2^{2^{30}}", "2^{2^{30}}", False),
        ("5", "10^{10^{10^{10}}}", False),
        ("5", "(10^{10^{10}})!", False),
    ],
)
def test_decide_huge_values(a, b, expected):
    start = time.perf_counter()
    assert decide(parse_numeric(a), parse_numeric(b)) is expected
    assert time.perf_counter() - start < 2.0


def test_decide_literal_of_more_than_4300_digits():
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        digits, next_digits = str(3**12000), str(3**12000 + 1)
    finally:
        sys.set_int_max_str_digits(old)
    assert decide(parse_numeric(digits), parse_numeric("3^{12000}")) is True
    assert decide(parse_numeric(next_digits), parse_numeric("3^{12000}")) is False
    assert "huge" in math_bignum.canonical(parse_numeric(digits))
    assert math_bignum.canonical(parse_numeric(digits)) == math_bignum.canonical(parse_numeric("3^{12000}"))


def _random_tree(rng: random.Random, depth: int) -> Op | Num:
    if depth == 0 or rng.random() < 0.25:
        return Num(Fraction(rng.randint(-6, 30)))
    kind = rng.choice(["add", "mul", "neg", "pow", "fact", "div"])
    if kind == "neg":
        return Op("neg", (_random_tree(rng, depth - 1),))
    if kind == "fact":
        return Op("fact", (Num(Fraction(rng.randint(0, 40))),))
    if kind == "pow":
        return Op("pow", (Num(Fraction(rng.randint(-5, 12))), Num(Fraction(rng.randint(0, 60)))))
    return Op(kind, (_random_tree(rng, depth - 1), _random_tree(rng, depth - 1)))


def _respelled(node, rng: random.Random):
    """The same value written differently: arguments swapped, a term added and taken away, a power split."""
    if isinstance(node, Op) and node.kind in ("add", "mul") and rng.random() < 0.5:
        return Op(node.kind, (node.args[1], node.args[0]))
    if isinstance(node, Op) and node.kind == "pow" and node.args[1].value >= 2 and rng.random() < 0.5:
        base, e = node.args
        k = Fraction(rng.randint(1, int(e.value) - 1))
        return Op("mul", (Op("pow", (base, Num(k))), Op("pow", (base, Num(e.value - k)))))
    k = Num(Fraction(rng.randint(1, 9)))
    if rng.random() < 0.5:
        return Op("add", (Op("add", (k, node)), Op("neg", (k,))))
    return Op("div", (Op("mul", (node, k)), k))


def _reference(node) -> Fraction | None:
    """Exact value by plain Python arithmetic: the slow, obviously correct version."""
    if isinstance(node, Num):
        return node.value
    args = [_reference(a) for a in node.args]
    if None in args:
        return None
    if node.kind == "add":
        return args[0] + args[1]
    if node.kind == "mul":
        return args[0] * args[1]
    if node.kind == "neg":
        return -args[0]
    if node.kind == "div":
        return None if args[1] == 0 else args[0] / args[1]
    if node.kind == "fact":
        n = 1
        for k in range(2, int(args[0]) + 1):
            n *= k
        return Fraction(n)
    return args[0] ** int(args[1])


def _clear_caches():
    for fn in (math_bignum._bits, math_bignum._exact, math_bignum._residue):
        fn.cache_clear()


def test_decide_agrees_with_exact_arithmetic_when_forced_onto_the_fast_paths(monkeypatch):
    """With the exact-evaluation budget at 40 bits, larger values go through logs and residues."""
    rng = random.Random(13)
    monkeypatch.setattr(math_bignum, "MAX_EXACT_BITS", 40)
    _clear_caches()
    decided = checked = 0
    try:
        for _ in range(400):
            a, b = _random_tree(rng, 3), _random_tree(rng, 3)
            roll = rng.random()
            if roll < 0.35:
                b = _respelled(a, rng)  # the same value: only logs and residues can tell
            elif roll < 0.5:
                b = Op("add", (a, Num(Fraction(1))))  # one more: logs overlap, residues differ
            ra, rb = _reference(a), _reference(b)
            if ra is None or rb is None:
                continue
            checked += 1
            verdict = decide(a, b)
            assert verdict in (ra == rb, None), (a, b)
            decided += verdict is not None
    finally:
        _clear_caches()
    assert checked > 250 and decided > 0.8 * checked


def test_is_huge_only_for_integral_towers():
    assert math_bignum.is_huge(parse_numeric("2^{2^{30}}"))
    assert math_bignum.is_huge(parse_numeric("(10^{100})!"))
    assert not math_bignum.is_huge(parse_numeric("2^{100}"))  # cheap: computed exactly
    assert not math_bignum.is_huge(parse_numeric("4^{\\frac{1}{2}}"))  # not integral: for the LaTeX parser


@pytest.mark.parametrize("modulus", [2305843009213693950, 360, 1024, 97])
def test_residue_of_power_towers_against_pow(monkeypatch, modulus):
    """b^(c^k) mod m through Euler's theorem (bases sharing factors with m included) equals Python's pow."""
    monkeypatch.setattr(math_bignum, "MAX_EXACT_BITS", 40)
    _clear_caches()
    try:
        for base, c, k in [(2, 2, 70), (6, 3, 50), (10, 7, 30), (3, 2, 45)]:
            tower = Op("pow", (Num(Fraction(base)), Op("pow", (Num(Fraction(c)), Num(Fraction(k))))))
            assert math_bignum.exact_value(tower) is None  # forced onto the residue path
            assert math_bignum.residue(tower, modulus) == pow(base, c**k, modulus)
    finally:
        _clear_caches()
