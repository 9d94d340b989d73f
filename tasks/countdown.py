"""``countdown``: reach a target from a few numbers with + - * /, each number used once.

A problem is 3 or 4 numbers from 1 to 50 and a target from 1 to 100, made by combining
the numbers in a random order with random operations, so at least one solution exists;
every intermediate result is a positive integer (the rules of the game show). The
answer is an expression in ``\\boxed{}``, judged by the ``countdown`` verifier
(``verifiers/countdown.py``), which parses it with ``ast`` and checks that it uses exactly
the given numbers and equals the target. Rows carry ``numbers``, ``target``, one reference
expression as ``answer`` and a demonstration as ``solution``.

As with ``arithmetic``, a hash of the problem (its sorted numbers and target) assigns it
to the train or the held-out split, so the splits never overlap, and each split is a
deterministic function of its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import verifiers.countdown  # noqa: F401  (registers the "countdown" verifier)
from tasks.base import Task
from tasks.procedural import TEST_SEED, TEST_SIZE, TRAIN_SEED, TRAIN_SIZE, split_of_key


@dataclass(frozen=True)
class CountdownSpec:
    min_numbers: int = 3
    max_numbers: int = 4
    max_number: int = 50  # numbers are drawn from [1, max_number]
    max_target: int = 100  # targets lie in [1, max_target]


def split_of(numbers: list[int], target: int) -> str:
    return split_of_key(f"{sorted(numbers)}->{target}")


def _combine(a: tuple[int, str], b: tuple[int, str], op: str) -> tuple[int, str] | None:
    """a op b when the result is a positive integer, with its expression; else None."""
    (x, ex), (y, ey) = a, b
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x // y if x % y == 0 else 0}[op]
    return (value, f"({ex} {op} {ey})") if value > 0 else None


def make_problem(rng: random.Random, spec: CountdownSpec) -> dict[str, Any]:
    while True:
        count = rng.randint(spec.min_numbers, spec.max_numbers)
        numbers = [rng.randint(1, spec.max_number) for _ in range(count)]
        pool = [(n, str(n)) for n in numbers]
        rng.shuffle(pool)
        while len(pool) > 1:
            i, j = rng.sample(range(len(pool)), 2)
            combined = _combine(pool[i], pool[j], rng.choice("+-*/"))
            if combined is None:
                break
            pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [combined]
        if len(pool) == 1 and 1 <= pool[0][0] <= spec.max_target:
            target, expression = pool[0][0], pool[0][1]
            if count > 1:
                expression = expression[1:-1]  # the outermost parentheses
            return {
                "question": f"Using the numbers {numbers}, make {target}.",
                "numbers": numbers,
                "target": target,
                "answer": expression,
                "solution": f"{expression} = {target}. The answer is \\boxed{{{expression}}}.",
            }


def generate(split: str, size: int, seed: int, spec: CountdownSpec = CountdownSpec()) -> list[dict[str, Any]]:
    """Up to ``size`` distinct problems of ``split``, a deterministic function of ``seed``."""
    if split not in ("train", "test"):
        raise ValueError(f"countdown has splits 'train' and 'test'; got {split!r}")
    rng = random.Random(f"countdown/{split}/{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(50 * size):
        if len(rows) >= size:
            break
        row = make_problem(rng, spec)
        key = f"{sorted(row['numbers'])}->{row['target']}"
        if key not in seen and split_of(row["numbers"], row["target"]) == split:
            seen.add(key)
            rows.append(row)
    return rows


def load(split: str) -> list[dict[str, Any]]:
    if split == "train":
        return generate("train", TRAIN_SIZE, TRAIN_SEED)
    return generate(split, TEST_SIZE, TEST_SEED)


TASK = Task(
    name="countdown",
    load=load,
    verifier="countdown",
    prompt_template=(
        "Using the numbers {numbers}, write an arithmetic expression that equals {target}. Use each number "
        "exactly once, with + - * / and parentheses. Give the expression in \\boxed{}.\nAnswer:"
    ),
    solution_field="solution",
)
