"""When a parsed prediction is the same answer as the parsed gold.

Numbers compare exactly (decimals were parsed to rationals: ``0.5 == 1/2``,
``1000001 != 1000000``). Closed forms (radicals, pi, logs) are equal when their
difference evaluates to zero at 50 digits, which is an identity check, not a
tolerance. The one approximate rule: a plain decimal with at least
``MIN_APPROX_DIGITS`` significant digits equals an exact value whose decimal expansion
does not terminate (``1/3``, ``sqrt(2)``, ``pi``) when it is within one unit of its
last place (``0.333333 == 1/3``, ``0.707107 == sqrt(2)/2``; ``0.33 != 1/3``,
``3.14 != pi``). Expressions with variables are equal when their difference vanishes
at several random rational points (and, failing that, when sympy simplifies it to 0).
A percent sign may be dropped or applied: ``50%`` matches ``50`` and ``0.5``, but a bare
``0.5`` matches only a gold written as ``0.5`` or ``50%``.
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy
from sympy.core.function import AppliedUndef

from verifiers import math_bignum
from verifiers.math_normalize import normalize_text
from verifiers.math_latex import is_name
from verifiers.math_quantities import ClockTime, Date, Duration, Ratio, number_states_quantity, quantity_equivalent
from verifiers.math_values import Collection, Equation, Interval, Intervals, Matrix, Scalar, Text, Value

_QUANTITIES = (Ratio, ClockTime, Date, Duration)

MIN_APPROX_DIGITS = 6
_DIGITS = 50
# where identities in variables are checked: generic rationals, one negative
_POINTS = [sympy.Rational(p, q) for p, q in ((7, 5), (23, 13), (9, 17), (31, 7), (-5, 11))]


def equivalent(pred: Value, gold: Value) -> bool:
    """True when ``pred`` states the gold answer (the relation is not symmetric: the gold's form decides)."""
    if isinstance(gold, _QUANTITIES):
        if isinstance(pred, Equation):  # "\frac{4}{6} = \frac{2}{3}" for the ratio 2:3
            stated = equation_value(pred, constant=True)
            return stated is not None and equivalent(stated, gold)
        return quantity_equivalent(pred, gold, _rational(pred))
    if isinstance(gold, Scalar):
        return _matches_scalar(pred, gold)
    if isinstance(gold, Equation):
        return _matches_equation(pred, gold)
    if isinstance(gold, Intervals):
        return _matches_intervals(pred, gold)
    if isinstance(gold, Collection):
        return _matches_collection(pred, gold)
    if isinstance(gold, Matrix):
        return _matches_matrix(pred, gold)
    if isinstance(gold, Text):
        if isinstance(pred, Text):
            return pred.text == gold.text
        return isinstance(pred, Scalar) and normalize_text(pred.source) == gold.text
    return False


def distinct_values(items: list[Value], limit: int | None = None) -> list[Value]:
    """``items`` without repeats (up to equivalence); at most ``limit + 1`` of them when a limit is given."""
    return _dedupe(items, limit)


def same_answer(a: Value, b: Value) -> bool:
    """Symmetric version, for telling whether two boxed answers say the same thing."""
    return equivalent(a, b) or equivalent(b, a)


# ---------------------------------------------------------------- scalars


def _rational(value: Value) -> Fraction | None:
    """The value of a plain rational number, else None."""
    if isinstance(value, Scalar) and value.big is None and value.expr.is_Rational and not value.percent:
        return Fraction(int(value.expr.p), int(value.expr.q))
    return None


def _matches_scalar(pred: Value, gold: Scalar) -> bool:
    if isinstance(pred, Scalar):
        return scalars_equal(pred, gold)
    if isinstance(pred, _QUANTITIES):
        number = _rational(gold)
        return number is not None and number_states_quantity(number, pred)
    if isinstance(pred, Equation):
        value = equation_value(pred, constant=is_constant(gold.expr))
        return value is not None and _matches_scalar(value, gold)
    if isinstance(pred, Collection) and len(pred.items) == 1:
        return _matches_scalar(pred.items[0], gold)
    if isinstance(pred, Text):
        return bool(gold.expr.free_symbols) and normalize_text(gold.source) == pred.text
    return False


def is_constant(expr: sympy.Basic) -> bool:
    """A number or closed form: no variables and no unknown functions (``f(2)`` is not a constant)."""
    return not expr.free_symbols and not expr.atoms(AppliedUndef)


def equation_value(eq: Equation, constant: bool) -> Value | None:
    """The value an equation states: ``x = 3`` -> 3, ``2 + 3 = 5`` -> 5; None if it contradicts itself (``4 = 5``)."""
    scalars = [s for s in eq.sides if isinstance(s, Scalar)]
    constants = [s for s in scalars if is_constant(s.expr)]
    if constants:
        # ``\frac{\pi}{4} = 0.785`` is consistent (a rounded decimal); the exact side is the answer
        exact = [c for c in constants if c.ulp is None] or constants
        if any(not (_same_constant(c, exact[-1]) or _rounds_to(c, exact[-1])) for c in constants):
            return None
        if constant:
            return exact[-1]
    for side in reversed(eq.sides):
        if not (isinstance(side, Scalar) and is_name(side.expr)):
            return side
    return eq.sides[-1]


def _same_constant(a: Scalar, b: Scalar) -> bool:
    if a.big is not None or b.big is not None:
        return _big_equal(a, b)
    return expr_equal(a.expr, b.expr)


def _rounds_to(decimal: Scalar, exact: Scalar) -> bool:
    """``decimal`` is ``exact`` written to its last place (rounded or cut), whatever its number of digits."""
    if decimal.ulp is None or exact.big is not None or decimal.big is not None:
        return False
    value = _numeric(exact.expr)
    return value is not None and value.is_real and abs(value - decimal.expr) <= decimal.ulp


def scalars_equal(pred: Scalar, gold: Scalar) -> bool:
    if pred.big is not None or gold.big is not None:
        return _big_equal(pred, gold)
    if pred.base is not None or gold.base is not None:
        return _based_equal(pred, gold)
    for p_expr, p_ulp in _percent_readings(pred):
        for g_expr, g_ulp in _percent_readings(gold):
            if expr_equal(p_expr, g_expr):
                return True
            if p_ulp is not None and pred.sig_digits >= MIN_APPROX_DIGITS and _approximates(p_expr, p_ulp, g_expr):
                return True
            if g_ulp is not None and gold.sig_digits >= MIN_APPROX_DIGITS and _approximates(g_expr, g_ulp, p_expr):
                return True
    return False


def _big_equal(a: Scalar, b: Scalar) -> bool:
    """Exact comparison of numbers too large to evaluate (``verifiers.math_bignum``); undecided is unequal."""
    tree_a = a.big if a.big is not None else math_bignum.from_sympy(a.expr)
    tree_b = b.big if b.big is not None else math_bignum.from_sympy(b.expr)
    if tree_a is None or tree_b is None:
        return False  # a huge integer is no closed form such as pi
    return math_bignum.decide(tree_a, tree_b) is True


_DIGIT_STRING = re.compile(r"\d+")


def _based_equal(pred: Scalar, gold: Scalar) -> bool:
    """Numbers in another base (``1011_2``): the same value when both carry a base; against a bare
    integer, the same digits (a gold ``1011_2`` asked for base 2, so ``1011`` answers it) or, for a
    bare gold, the same value (``123_7`` is 66)."""
    if pred.base is not None and gold.base is not None:
        return pred.expr == gold.expr
    based, bare = (pred, gold) if pred.base is not None else (gold, pred)
    if not _DIGIT_STRING.fullmatch(bare.source.strip()):
        return False
    if bare.source.strip().lstrip("0") == based.base[0] or (bare.source.strip() == "0" and based.base[0] == "0"):
        return True
    return bare is gold and pred.expr == gold.expr


def _percent_readings(s: Scalar) -> list[tuple[sympy.Basic, sympy.Rational | None]]:
    readings = [(s.expr, s.ulp)]
    if s.percent:
        readings.append((s.expr / 100, s.ulp / 100 if s.ulp is not None else None))
    return readings


def _approximates(decimal: sympy.Rational, ulp: sympy.Rational, exact: sympy.Basic) -> bool:
    """``decimal`` is ``exact`` rounded or cut to its last place, and ``exact`` has no finite decimal expansion."""
    if exact.free_symbols or not exact.is_number:
        return False
    if exact.is_Rational:
        den = exact.q
        for p in (2, 5):
            while den % p == 0:
                den //= p
        if den == 1:
            return False  # a terminating decimal must be written exactly
    value = _numeric(exact)
    if value is None or not value.is_real:
        return False
    return abs(value - decimal) <= ulp


def _numeric(expr: sympy.Basic):
    try:
        value = expr.evalf(_DIGITS)
    except Exception:
        return None
    if not value.is_number or value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    return value


def expr_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    """Exact equality of two sympy expressions (numbers, closed forms, or expressions in variables)."""
    try:
        if a == b:
            return True
        if a.free_symbols != b.free_symbols:
            return False
        if a.free_symbols:
            return _identity(a, b)
        if a.is_Rational and b.is_Rational:
            return False
        if not (a.is_finite is not False and b.is_finite is not False):
            return False  # infinities: only equal when == above
        va, vb = _numeric(a), _numeric(b)
        if va is None or vb is None:
            return sympy.simplify(a - b) == 0
        return abs(va - vb) <= sympy.Float(10) ** (12 - _DIGITS) * max(1, abs(vb))
    except Exception:
        return False


def _small_powers(expr: sympy.Basic, limit: int = 12) -> bool:
    """Expanding is cheap: no power above ``limit`` (``(x+y+z)^{1000}`` would expand to half a million terms)."""
    return all(not (p.exp.is_Number and abs(p.exp) > limit) for p in expr.atoms(sympy.Pow))


def _identity(a: sympy.Basic, b: sympy.Basic) -> bool:
    """Equal as functions: the difference vanishes at several rational points (``expand`` first, when cheap)."""
    diff = a - b
    try:
        if _small_powers(diff) and sympy.expand(diff) == 0:
            return True
    except Exception:
        pass
    symbols = sorted(diff.free_symbols, key=str)
    checked = 0
    for k in range(len(_POINTS)):
        point = {s: _POINTS[(k + j) % len(_POINTS)] + sympy.Rational(j, 97) for j, s in enumerate(symbols)}
        try:
            d, scale = diff.evalf(30, subs=point), a.evalf(30, subs=point)
        except Exception:
            continue
        if not d.is_number or d.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo) or not scale.is_number:
            continue
        if abs(d) > sympy.Float(10) ** -20 * max(1, abs(scale)):
            return False
        checked += 1
    if checked >= 2:
        return True
    try:
        return sympy.simplify(diff) == 0
    except Exception:
        return False


# ---------------------------------------------------------------- equations


def _is_assignment(eq: Equation) -> bool:
    return len(eq.sides) == 2 and isinstance(eq.sides[0], Scalar) and is_name(eq.sides[0].expr)


def _matches_equation(pred: Value, gold: Equation) -> bool:
    if _is_assignment(gold):
        if isinstance(pred, Equation) and _is_assignment(_oriented(pred)):
            pred = _oriented(pred)
            return expr_equal(pred.sides[0].expr, gold.sides[0].expr) and equivalent(pred.sides[1], gold.sides[1])
        if not isinstance(pred, Equation):
            return equivalent(pred, gold.sides[1])
    if isinstance(pred, Equation) and len(pred.sides) == 2 and len(gold.sides) == 2:
        return _same_equation(pred, gold)
    return False


def _oriented(eq: Equation) -> Equation:
    """``3 = x`` -> ``x = 3``."""
    if len(eq.sides) == 2 and isinstance(eq.sides[1], Scalar) and is_name(eq.sides[1].expr):
        if not (isinstance(eq.sides[0], Scalar) and is_name(eq.sides[0].expr)):
            return Equation((eq.sides[1], eq.sides[0]))
    return eq


def _same_equation(pred: Equation, gold: Equation) -> bool:
    """Same solution set for linear rescalings: ``y = 2x + 1`` and ``2x - y + 1 = 0``."""
    if not all(isinstance(s, Scalar) and s.big is None for s in pred.sides + gold.sides):
        return False
    f_pred = pred.sides[0].expr - pred.sides[1].expr
    f_gold = gold.sides[0].expr - gold.sides[1].expr
    if expr_equal(f_pred, f_gold) or expr_equal(f_pred, -f_gold):
        return True
    symbols = sorted(f_gold.free_symbols | f_pred.free_symbols, key=str)
    if not symbols or f_gold.free_symbols != f_pred.free_symbols:
        return False
    ratios = []
    for k in range(len(_POINTS)):
        point = {s: _POINTS[(k + j) % len(_POINTS)] + sympy.Rational(j, 97) for j, s in enumerate(symbols)}
        try:
            num, den = f_gold.evalf(30, subs=point), f_pred.evalf(30, subs=point)
        except Exception:
            continue
        if den.is_number and num.is_number and abs(den) > 1e-12:
            ratios.append(num / den)
    if len(ratios) < 3 or abs(ratios[0]) < 1e-12:
        return False
    return all(abs(r - ratios[0]) <= 1e-15 * abs(ratios[0]) for r in ratios)


# ---------------------------------------------------------------- intervals, collections, matrices


def _matches_intervals(pred: Value, gold: Intervals) -> bool:
    if isinstance(pred, Collection) and pred.kind == "list" and all(isinstance(i, Intervals) for i in pred.items):
        pred = Intervals(tuple(part for i in pred.items for part in i.parts))
    if isinstance(pred, Collection) and pred.kind == "tuple" and len(pred.items) == 2 and len(gold.parts) == 1:
        lo, hi = pred.items  # "(1, 2)" read as a pair; the gold says it is the open interval
        part = gold.parts[0]
        if not (part.lo_closed or part.hi_closed) and isinstance(lo, Scalar) and isinstance(hi, Scalar):
            pred = Intervals((Interval(lo.expr, hi.expr, False, False),))
    if not isinstance(pred, Intervals) or len(pred.parts) != len(gold.parts):
        return False
    return all(_same_interval(p, g) for p, g in zip(_sorted_parts(pred), _sorted_parts(gold)))


def _sorted_parts(intervals: Intervals) -> list[Interval]:
    def key(part: Interval):
        value = _numeric(part.lo) if part.lo.is_finite is not False else None
        return float(value) if value is not None and value.is_real else (-1e308 if part.lo == -sympy.oo else 1e308)

    return sorted(intervals.parts, key=key)


def _same_interval(p: Interval, g: Interval) -> bool:
    return (
        p.lo_closed == g.lo_closed
        and p.hi_closed == g.hi_closed
        and expr_equal(p.lo, g.lo)
        and expr_equal(p.hi, g.hi)
    )


def _matches_collection(pred: Value, gold: Collection) -> bool:
    items = _items_of(pred, gold)
    if items is None:
        return False
    gold_items = list(gold.items)
    if gold.kind == "set":
        gold_items = _dedupe(gold_items)
        items = _dedupe(items, limit=len(gold_items))
    if len(items) != len(gold_items):
        return False
    bare_values = not any(isinstance(p, Equation) for p in items)
    ordered = gold.kind == "tuple" or (bare_values and _assigns_distinct_names(gold_items))
    if ordered:
        return all(equivalent(p, g) for p, g in zip(items, gold_items))
    unmatched = list(items)
    for g in gold_items:
        match = next((i for i, p in enumerate(unmatched) if equivalent(p, g)), None)
        if match is None:
            return False
        unmatched.pop(match)
    return True


def _assigns_distinct_names(items: list[Value]) -> bool:
    """``a = 2, b = 3``: bare values ``2, 3`` answer it in that order (``x = 2, x = 3`` has no order)."""
    if not all(isinstance(g, Equation) and _is_assignment(g) for g in items):
        return False
    return len({str(g.sides[0].expr) for g in items}) == len(items)


def _items_of(pred: Value, gold: Collection) -> list[Value] | None:
    if isinstance(pred, Collection):
        if gold.kind == "tuple" and pred.kind == "set" and len(pred.items) > 1:
            return None  # a set where an ordered answer is asked for
        return list(pred.items)
    if isinstance(pred, Intervals) and gold.kind == "tuple" and len(pred.parts) == 1:
        part = pred.parts[0]
        if not (part.lo_closed or part.hi_closed) and part.lo.is_finite and part.hi.is_finite:
            return [Scalar(part.lo, str(part.lo)), Scalar(part.hi, str(part.hi))]
    if isinstance(pred, Matrix) and gold.kind == "tuple" and (len(pred.rows) == 1 or len(pred.rows[0]) == 1):
        return [cell for row in pred.rows for cell in row]
    if isinstance(pred, Equation) and len(pred.sides) == 2 and isinstance(pred.sides[1], Collection):
        return _items_of(pred.sides[1], gold)  # "x = \{1, 2\}"
    if len(gold.items) == 1:
        return [pred]
    return None


def _dedupe(items: list[Value], limit: int | None = None) -> list[Value]:
    """Items up to equivalence, in order; stops once there are more than ``limit`` of them."""
    unique: list[Value] = []
    seen: set[str] = set()
    for item in items:
        try:
            key = repr(item)
        except ValueError:  # a huge integer has no decimal repr (Python's 4300-digit limit)
            key = f"id:{id(item)}"
        if key in seen:
            continue
        seen.add(key)
        if not any(same_answer(item, u) for u in unique):
            unique.append(item)
            if limit is not None and len(unique) > limit:
                break
    return unique


def _as_row(item: Value) -> tuple[Value, ...] | None:
    if isinstance(item, Collection):
        return item.items
    if isinstance(item, Intervals) and len(item.parts) == 1 and item.parts[0].lo_closed and item.parts[0].hi_closed:
        part = item.parts[0]  # "[1, 2]" inside a list of rows
        return (Scalar(part.lo, str(part.lo)), Scalar(part.hi, str(part.hi)))
    return None


def _matches_matrix(pred: Value, gold: Matrix) -> bool:
    rows = None
    if isinstance(pred, Matrix):
        rows = pred.rows
    elif isinstance(pred, Collection) and pred.kind in ("tuple", "list"):
        nested = [_as_row(i) for i in pred.items]
        if all(r is not None for r in nested):
            rows = tuple(nested)  # [[1, 2], [3, 4]]
        elif len(gold.rows[0]) == 1:
            rows = tuple((i,) for i in pred.items)  # a column vector written as a tuple
        elif len(gold.rows) == 1:
            rows = (tuple(pred.items),)
    if rows is None or len(rows) != len(gold.rows) or any(len(r) != len(g) for r, g in zip(rows, gold.rows)):
        return False
    return all(equivalent(p, g) for r, gr in zip(rows, gold.rows) for p, g in zip(r, gr))
