"""Exact-integer verifier for the built-in ``arithmetic`` task.

The answer is the content of the last ``\\boxed{...}`` (nested braces allowed); it
must be a plain integer equal to ``example["answer"]``. Parsing is a linear scan,
so it cannot hang on adversarial text.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from verifiers.registry import register
from verifiers.types import Verdict

_INTEGER = re.compile(r"[+-]?\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}``, braces balanced; None if absent."""
    best = None
    for command in ("\\boxed{", "\\fbox{"):
        start = text.rfind(command)
        if start >= 0 and (best is None or start > best[0]):
            best = (start, command)
    if best is None:
        return None
    i = best[0] + len(best[1])
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None  # unbalanced: the box never closes


@register("integer_boxed", isolated=False, requires=("answer",))  # a regex and int(): cheap and trusted
def integer_boxed(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Correct iff the last boxed answer is exactly the integer ``example['answer']``."""
    try:
        gold = int(str(example["answer"]).strip())
    except (KeyError, ValueError) as exc:
        return Verdict("unverifiable", 0.0, f"gold answer is not an integer: {exc!r}")
    boxed = last_boxed(completion)
    if boxed is None:
        return Verdict("incorrect", 0.0, "no \\boxed{} answer")
    answer = boxed.strip().replace(" ", "")
    if not _INTEGER.fullmatch(answer):
        return Verdict("incorrect", 0.0, f"boxed answer {boxed!r} is not an integer")
    if int(answer) == gold:
        return Verdict("correct", 1.0, "exact match", str(gold))
    return Verdict("incorrect", 0.0, f"expected {gold}, got {int(answer)}", str(int(answer)))
