"""``arithmetic``: procedurally generated multi-step integer arithmetic.

A problem chains a few operands with ``+``, ``-`` and ``*`` (multiplication by a
single digit), left to right: ``What is 38 + 17 - 6?``. The demonstration works it
one step at a time and boxes the result::

    38 + 17 = 55. 55 - 6 = 49. The answer is \\boxed{49}.

The held-out split is disjoint from training by construction: every problem is
assigned to a split by a hash of its text, so no seed or size can make the splits
overlap. Both splits are deterministic functions of their seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from tasks.base import Task

HELDOUT_BUCKETS = 10  # of 100: the share of the problem space reserved for held-out
TRAIN_SIZE = 20_000
TEST_SIZE = 500
TRAIN_SEED = 0
TEST_SEED = 1


@dataclass(frozen=True)
class ArithmeticSpec:
    """The shape of generated problems."""

    min_operands: int = 3
    max_operands: int = 3
    max_value: int = 99  # operands are drawn from [0, max_value]
    ops: str = "+-"
    direct_fraction: float = 0.0  # share of demonstrations that state the answer without the working


def split_of(question: str) -> str:
    """'test' for the held-out share of the problem space, 'train' for the rest."""
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < HELDOUT_BUCKETS else "train"


def make_problem(rng: random.Random, spec: ArithmeticSpec) -> dict[str, Any]:
    n = rng.randint(spec.min_operands, spec.max_operands)
    value = rng.randint(0, spec.max_value)
    text = str(value)
    steps = []
    for _ in range(n - 1):
        op = rng.choice(spec.ops)
        operand = rng.randint(2, 9) if op == "*" else rng.randint(0, spec.max_value)
        result = {"+": value + operand, "-": value - operand, "*": value * operand}[op]
        steps.append(f"{value} {op} {operand} = {result}.")
        text += f" {op} {operand}"
        value = result
    answer = f"The answer is \\boxed{{{value}}}."
    direct = rng.random() < spec.direct_fraction
    return {
        "question": f"What is {text}?",
        "answer": str(value),
        "solution": answer if direct else " ".join(steps) + " " + answer,
    }


def space_size(spec: ArithmeticSpec) -> int:
    """How many distinct problems the spec can produce (an upper bound with '*')."""
    values, ops = spec.max_value + 1, len(spec.ops)
    return sum(values ** n * ops ** (n - 1) for n in range(spec.min_operands, spec.max_operands + 1))


def generate(split: str, size: int, seed: int, spec: ArithmeticSpec = ArithmeticSpec()) -> list[dict[str, Any]]:
    """Up to ``size`` distinct problems of ``split``, a deterministic function of ``seed``.

    Fewer come back only when the split's share of the problem space is smaller than ``size``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"arithmetic has splits 'train' and 'test'; got {split!r}")
    rng = random.Random(f"arithmetic/{split}/{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    max_attempts = 20 * max(size, space_size(spec))
    for _ in range(max_attempts):
        if len(rows) >= size:
            break
        row = make_problem(rng, spec)
        if row["question"] in seen or split_of(row["question"]) != split:
            continue
        seen.add(row["question"])
        rows.append(row)
    return rows


DEFAULT_SPEC = ArithmeticSpec()


def load(split: str) -> list[dict[str, Any]]:
    if split == "train":
        return generate("train", TRAIN_SIZE, TRAIN_SEED, DEFAULT_SPEC)
    return generate(split, TEST_SIZE, TEST_SEED, DEFAULT_SPEC)


TASK = Task(
    name="arithmetic",
    load=load,
    verifier="integer_boxed",
    prompt_template="Question: {question}\nAnswer:",
    solution_field="solution",
)
