"""``arithmetic``: procedurally generated multi-step integer arithmetic.

A problem chains a few operands with ``+``, ``-`` or ``*`` (multiplication by a
single digit), left to right: ``What is 6 + 8 + 2 + 4?``. The verifier accepts
an exact integer in the last ``\\boxed{}``. The demonstrations come in the
styles of a mixed SFT corpus: some work the problem one operation at a time::

    6 + 8 = 14. 14 + 2 = 16. 16 + 4 = 20. The answer is \\boxed{20}.

a share ``direct_fraction`` states the answer at once (``The answer is
\\boxed{20}.``), and a share ``unboxed_fraction`` writes the final answer
without the box (``The answer is 20.``), which the verifier does not accept. The
default spec is the demo's: four single-digit operands added up, half of the
demonstrations direct, half unboxed. An SFT policy imitates the whole mix; which
habits earn reward is for GRPO to find out from the verifier alone.

The held-out split is disjoint from training by construction: every problem is
assigned to a split by a hash of its text, so no seed or size can make the splits
overlap. Both splits are deterministic functions of their seed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Sequence

from tasks.base import Task
from tasks.procedural import TEST_SEED, TEST_SIZE, TRAIN_SEED, TRAIN_SIZE, split_of_key


@dataclass(frozen=True)
class ArithmeticSpec:
    """The shape of generated problems."""

    min_operands: int = 4
    max_operands: int = 4
    max_value: int = 9  # operands are drawn from [0, max_value]
    ops: str = "+"  # operators drawn from: any of '+', '-', '*'
    direct_fraction: float = 0.5  # share of demonstrations that state the answer without the working
    unboxed_fraction: float = 0.5  # share of demonstrations that write the final answer without \\boxed{}


def split_of(question: str) -> str:
    """'test' for the held-out share of the problem space, 'train' for the rest."""
    return split_of_key(question)


def build_row(operands: Sequence[int], ops: Sequence[str], direct: bool, boxed: bool = True) -> dict[str, Any]:
    """The row of the problem ``operands[0] ops[0] operands[1] ...``, evaluated left to right."""
    value = operands[0]
    text = str(value)
    steps = []
    for op, operand in zip(ops, operands[1:]):
        result = {"+": value + operand, "-": value - operand, "*": value * operand}[op]
        steps.append(f"{value} {op} {operand} = {result}.")
        text += f" {op} {operand}"
        value = result
    answer = f"The answer is \\boxed{{{value}}}." if boxed else f"The answer is {value}."
    return {
        "question": f"What is {text}?",
        "answer": str(value),
        "solution": answer if direct else " ".join(steps) + " " + answer,
    }


def _operand_range(op: str, spec: ArithmeticSpec) -> range:
    return range(2, 10) if op == "*" else range(0, spec.max_value + 1)


def make_problem(rng: random.Random, spec: ArithmeticSpec) -> dict[str, Any]:
    n = rng.randint(spec.min_operands, spec.max_operands)
    ops = [rng.choice(spec.ops) for _ in range(n - 1)]
    operands = [rng.randint(0, spec.max_value)] + [rng.choice(_operand_range(op, spec)) for op in ops]
    return build_row(operands, ops, *_styles(rng, spec))


def _styles(rng: random.Random, spec: ArithmeticSpec) -> tuple[bool, bool]:
    """(direct, boxed) for one demonstration."""
    direct = rng.random() < spec.direct_fraction
    return direct, rng.random() >= spec.unboxed_fraction


def space_size(spec: ArithmeticSpec) -> int:
    """How many distinct problems the spec can produce (an upper bound with '*')."""
    values, ops = spec.max_value + 1, len(spec.ops)
    return sum(values ** n * ops ** (n - 1) for n in range(spec.min_operands, spec.max_operands + 1))


ENUMERATE_BELOW = 200_000  # smaller problem spaces are enumerated, larger ones sampled


def generate(split: str, size: int, seed: int, spec: ArithmeticSpec = ArithmeticSpec()) -> list[dict[str, Any]]:
    """Up to ``size`` distinct problems of ``split``, a deterministic function of ``seed``.

    Fewer come back only when the split's share of the problem space is smaller than ``size``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"arithmetic has splits 'train' and 'test'; got {split!r}")
    rng = random.Random(f"arithmetic/{split}/{seed}")
    if space_size(spec) <= ENUMERATE_BELOW:
        problems = [
            (operands, ops)
            for n in range(spec.min_operands, spec.max_operands + 1)
            for ops in itertools.product(spec.ops, repeat=n - 1)
            for operands in itertools.product(range(spec.max_value + 1), *(_operand_range(op, spec) for op in ops))
        ]
        rng.shuffle(problems)
        rows = []
        for operands, ops in problems:
            row = build_row(operands, ops, *_styles(rng, spec))
            if split_of(row["question"]) == split:
                rows.append(row)
                if len(rows) == size:
                    break
        return rows
    rows = []
    seen: set[str] = set()
    for _ in range(20 * size):
        if len(rows) >= size:
            break
        row = make_problem(rng, spec)
        if row["question"] not in seen and split_of(row["question"]) == split:
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
