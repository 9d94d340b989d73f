"""Countdown verifier: an arithmetic expression that uses each given number once and hits the target.

The expression is the content of the last ``\\boxed{}`` of the completion (else of the last
``<answer>...</answer>``); anything after an ``=`` is ignored (``3 + 4 = 7`` reads ``3 + 4``),
and ``\\times``, ``\\cdot``, ``×`` and ``\\div``, ``÷`` read as ``*`` and ``/``. It is parsed
with ``ast`` (never evaluated as Python): only integer literals, ``+ - * /`` and parentheses
are allowed, and it is computed in exact fractions. It is correct when its literals are
exactly the example's ``numbers`` (as a multiset: each used once, none left out) and its value
equals ``target``. The verdict's ``extracted`` stays empty: different correct expressions
are not one answer to vote on.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction
from typing import Any, Mapping

from verifiers.arithmetic import last_boxed
from verifiers.registry import register
from verifiers.types import Verdict

MAX_EXPRESSION_CHARS = 200  # longer answers are not Countdown expressions (and would cost parse time)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_REPLACEMENTS = (("\\times", "*"), ("\\cdot", "*"), ("×", "*"), ("\\div", "/"), ("÷", "/"),
                 ("\\left", ""), ("\\right", ""), ("−", "-"))
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}


class NotCountdown(ValueError):
    """The text is not an expression of integers, + - * / and parentheses."""


def _value(node: ast.AST, literals: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body, literals)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left, literals), _value(node.right, literals)
        return _OPS[type(node.op)](left, right)  # Fraction / 0 raises ZeroDivisionError
    if isinstance(node, ast.Constant) and type(node.value) is int:
        literals.append(node.value)
        return Fraction(node.value)
    raise NotCountdown(f"{type(node).__name__} is not allowed; use integers, + - * / and parentheses")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """(exact value, integer literals in order) of a Countdown expression; raises on anything else."""
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = text.split("=")[0].strip()
    if len(text) > MAX_EXPRESSION_CHARS:
        raise NotCountdown(f"longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise NotCountdown(f"not an expression ({type(exc).__name__})") from exc
    literals: list[int] = []
    return _value(tree, literals), literals


@register("countdown", isolated=False, requires=("numbers", "target"))  # ast with size bounds: cheap and trusted
def countdown(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Correct iff the answer uses exactly ``example['numbers']`` and equals ``example['target']``."""
    try:
        numbers = sorted(int(n) for n in example["numbers"])
        target = Fraction(example["target"])
    except (KeyError, TypeError, ValueError) as exc:
        return Verdict("unverifiable", 0.0, f"example needs integer 'numbers' and 'target': {exc!r}")
    expression = last_boxed(completion)
    if expression is None:
        tags = _ANSWER_TAG.findall(completion)
        expression = tags[-1] if tags else None
    if expression is None:
        return Verdict("incorrect", 0.0, "no \\boxed{} (or <answer>) expression")
    try:
        value, literals = evaluate_expression(expression)
    except NotCountdown as exc:
        return Verdict("incorrect", 0.0, f"{expression.strip()[:60]!r}: {exc}")
    except ZeroDivisionError:
        return Verdict("incorrect", 0.0, f"{expression.strip()[:60]!r} divides by zero")
    if sorted(literals) != numbers:
        return Verdict("incorrect", 0.0, f"uses {sorted(literals)}; must use each of {numbers} exactly once")
    if value != target:
        return Verdict("incorrect", 0.0, f"evaluates to {value}, not {target}")
    return Verdict("correct", 1.0, "uses every number once and reaches the target")
