"""Support for the preference-pair tests: a verifier and procedural pairs a tiny model can learn.

* ``even_length`` (``--set verifier=pair_support:even_length``): a random-init tiny policy almost
  never answers an arithmetic problem right, so the task's own verifier would judge every sample
  incorrect and no pair could be formed; this one judges by the parity of the completion's length,
  which splits a random policy's samples about evenly.
* ``boxed_pairs``: arithmetic prompts whose chosen answer is in ``\\boxed{}`` and whose rejected one
  is not. Both sides are written step by step or directly, independently, so length says nothing
  about which is which; the rejected number is right half the time.
"""

from __future__ import annotations

import contextlib
import random

from grpo.pairs import PreferencePair
from tasks import get_task
from tasks.arithmetic import build_row
from verifiers import Verdict, register


@register("pair_test_even_length", isolated=False)
def even_length(completion: str, example) -> Verdict:
    """Correct iff the completion has an even number of characters (a trusted, in-process check)."""
    even = len(completion) % 2 == 0
    return Verdict("correct" if even else "incorrect", float(even), f"{len(completion)} characters")


def boxed_pairs(split: str, n: int, seed: int) -> list[PreferencePair]:
    """``n`` pairs from the first ``n`` problems of the arithmetic task's ``split``."""
    task = get_task("arithmetic")
    rng = random.Random(seed)
    pairs = []
    for row in task.rows(split, n):
        operands = [int(x) for x in row["question"].removeprefix("What is ").rstrip("?").split(" + ")]
        ops = ["+"] * (len(operands) - 1)
        chosen = build_row(operands, ops, direct=rng.random() < 0.5, boxed=True)["solution"]
        wrong = list(operands)
        if rng.random() < 0.5:
            wrong[-1] += rng.choice([1, 2, 3])
        rejected = build_row(wrong, ops, direct=rng.random() < 0.5, boxed=False)["solution"]
        pairs.append(PreferencePair(task.prompt(row), " " + chosen, " " + rejected))
    return pairs


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads, then restore the count. Tiny models train fastest on
    one thread; on a busy machine two threads of a 64-wide model mostly wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
