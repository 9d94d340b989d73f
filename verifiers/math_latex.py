"""LaTeX to sympy for scalars and expressions, with guards against runaway inputs.

The parser is latex2sympy2_extended's ANTLR grammar: it builds sympy objects from
tokens and never evaluates Python (sympy's ``parse_expr`` is never given model text).
Two things can still run away, and ``too_costly`` refuses them before parsing: the
parser slows down sharply with bracket depth, and sympy evaluates integer powers and
factorials while building them (``10^{10^{10}}``). The hard deadline of the sandbox
worker stays the last line of defence.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy
from latex2sympy2_extended.math_normalization import NormalizationConfig, normalize_latex

from verifiers.math_bignum import exact_value, parse_numeric

_CONVERSION = ConversionConfig(lowercase_symbols=False)
_MALFORMED_ONLY = NormalizationConfig(  # only \frac12 -> \frac{1}{2}, \sqrt3 -> \sqrt{3} and the like
    basic_latex=False, units=False, malformed_operators=True, nits=False, boxed="none"
)
_E_NOTATION = re.compile(r"(?<![A-Za-z\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\d^A-Za-z])")
_PLAIN_MATH = [  # what a model types outside LaTeX
    (re.compile(r"\*\*"), "^"),
    (re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])"), r"\\pi "),
    (re.compile(r"(?<![\\A-Za-z])(?:infinity|inf)(?![A-Za-z])"), r"\\infty "),
    (re.compile(r"(?<![\\A-Za-z])(sqrt|sin|cos|tan|ln|log|exp)(?=\s*[({\d])"), r"\\\1"),
]
_ROOT_PARENTHESES = re.compile(r"\\sqrt\s*\(")


def _root_braces(s: str) -> str:
    """``\\sqrt(x+1)`` -> ``\\sqrt{x+1}`` (the grammar wants braces), parentheses balanced."""
    while True:
        m = _ROOT_PARENTHESES.search(s)
        if not m:
            return s
        depth = 0
        for j in range(m.end() - 1, len(s)):
            depth += (s[j] == "(") - (s[j] == ")")
            if depth == 0:
                s = s[: m.start()] + "\\sqrt{" + s[m.end() : j] + "}" + s[j + 1 :]
                break
        else:
            return s
_MAX_EXPONENT = 10_000
_BOOLEANS = (sympy.logic.boolalg.BooleanFunction, sympy.logic.boolalg.BooleanAtom)


@lru_cache(maxsize=4096)
def latex_to_sympy(s: str) -> sympy.Basic | None:
    """Parse LaTeX with latex2sympy's grammar; decimals become exact rationals, ``i`` the imaginary unit.

    None for input that would take the parser or sympy unreasonably long (see ``too_costly``).
    """
    if too_costly(s):
        return None
    s = _E_NOTATION.sub(r"\1\\times 10^{\2}", s)
    for pattern, replacement in _PLAIN_MATH:
        s = pattern.sub(replacement, s)
    s = _root_braces(s)
    s = normalize_latex(s, _MALFORMED_ONLY)
    expr = latex2sympy(s, is_real=None, convert_degrees=True, normalization_config=None, conversion_config=_CONVERSION)
    if not isinstance(expr, sympy.Expr) or isinstance(expr, (sympy.core.relational.Relational, _BOOLEANS)):
        return None
    floats = expr.atoms(sympy.Float)
    if floats:
        expr = expr.xreplace({f: sympy.Rational(str(f)) for f in floats})
    imaginary = [sym for sym in expr.free_symbols if sym.name == "i"]
    if imaginary:
        expr = expr.xreplace({imaginary[0]: sympy.I})
    plain = {sym: sympy.Symbol(sym.name) for sym in expr.free_symbols if sym.assumptions0}
    if plain:
        expr = expr.xreplace(plain)
    if _huge(expr):
        return expr  # evaluating it could take forever; compare it unevaluated
    try:
        return expr.doit()
    except Exception:
        return expr


_MAX_LATEX_CHARS = 1000
_MAX_NESTING = 10  # grouping brackets: the parser's cost grows steeply with their depth
_MAX_ARGUMENT_NESTING = 60  # braces of command arguments (\\frac{..}{..}, \\sqrt{..}, ^{..}): cheap to nest
_NUMERIC_POWER = re.compile(r"(\d+)\s*\^\s*(?:\{\s*(\d+)\s*\}|(\d+))")
_BIG_FACTORIAL = re.compile(r"\d{6,}\s*!")
_ARGUMENT_BEFORE = re.compile(r"(?:\\[A-Za-z]+|[\^_}\]])\s*$")


def too_costly(s: str) -> bool:
    """Input whose parse or evaluation could run away: deep nesting, power towers, huge powers or factorials.

    latex2sympy's parser slows down sharply with the depth of grouping brackets (twelve nested
    ``{...}`` take seconds) but not with nested command arguments (forty nested ``\\frac`` take
    0.2 s), and sympy evaluates integer powers and factorials as it builds them
    (``10^{10^{10}}``, ``(10^{100})!`` never finish). Purely numeric answers never get here:
    ``verifiers.math_bignum`` reads them first.
    """
    if len(s) > _MAX_LATEX_CHARS:
        return True
    if _nesting(s) > _MAX_NESTING:
        return True
    for m in _NUMERIC_POWER.finditer(s):
        exponent = m.group(2) or m.group(3)
        if len(exponent) > 7 or len(m.group(1)) * int(exponent) > 200_000:
            return True
    for i, c in enumerate(s):
        if c == "^":
            group = _group_after(s, i + 1)
            if ("^" in group or "!" in group) and not re.search(r"[A-Za-z]", group.replace("\\frac", "")):
                return True  # a numeric power tower
            if _huge_numeric_exponent(group):
                return True  # x^{5 \\cdot 10^{9}}
        elif c == "!" and i > 0 and s[i - 1] in ")}":
            group = _group_before(s, i - 1)
            if "^" in group or "!" in group:
                return True
    return bool(_BIG_FACTORIAL.search(s))


def _nesting(s: str) -> int:
    """Depth of grouping brackets, not counting the braces of command arguments; or a large number
    when even the argument braces nest deeper than ``_MAX_ARGUMENT_NESTING``."""
    stack: list[bool] = []  # True: a grouping bracket
    grouping = deepest = 0
    for i, c in enumerate(s):
        if c in "({[":
            is_group = not (c == "{" and _ARGUMENT_BEFORE.search(s[max(0, i - 12) : i]))
            is_group = is_group and not (c == "[" and s[max(0, i - 6) : i].rstrip().endswith("\\sqrt"))
            stack.append(is_group)
            grouping += is_group
            deepest = max(deepest, grouping)
            if len(stack) > _MAX_ARGUMENT_NESTING:
                return _MAX_ARGUMENT_NESTING + _MAX_NESTING
        elif c in ")}]" and stack:
            grouping -= stack.pop()
    return deepest


def _huge_numeric_exponent(group: str) -> bool:
    tree = parse_numeric(group) if re.fullmatch(r"[\d\s+\-*/^(){}\\a-z]*", group) else None
    if tree is None:
        return False
    value = exact_value(tree)
    return value is None or abs(value) > _MAX_EXPONENT


def _group_after(s: str, i: int) -> str:
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            depth += (s[j] == "{") - (s[j] == "}")
            if depth == 0:
                return s[i + 1 : j]
        return s[i + 1 :]
    return s[i : i + 1]


def _group_before(s: str, close: int) -> str:
    opener = {")": "(", "}": "{"}[s[close]]
    depth = 0
    for j in range(close, -1, -1):
        depth += (s[j] == s[close]) - (s[j] == opener)
        if depth == 0:
            return s[j + 1 : close]
    return s[:close]


def _huge(expr: sympy.Basic) -> bool:
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow) and node.exp.is_Number and abs(node.exp) > _MAX_EXPONENT:
            return True
        if isinstance(node, (sympy.factorial, sympy.binomial)) and any(
            a.is_Number and abs(a) > _MAX_EXPONENT for a in node.args
        ):
            return True
    return False


def is_name(expr: sympy.Basic) -> bool:
    """A variable-like left-hand side: ``x``, ``a_1``, ``f(x)``, ``AB`` (a product of symbols)."""
    if isinstance(expr, sympy.Symbol):
        return True
    if isinstance(expr, sympy.Function) and isinstance(expr.func, sympy.core.function.UndefinedFunction):
        return True
    if isinstance(expr, sympy.Mul):
        return all(isinstance(a, sympy.Symbol) for a in expr.args)
    return False
