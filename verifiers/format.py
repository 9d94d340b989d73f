"""Format verifier: reasoning inside ``<think>...</think>``, then a non-empty answer.

The R1-style template asks the model to think first and answer after. This verifier rewards that
shape only; combine it with a correctness verifier (``verifiers.combine.weighted``, or
``reward.verifiers`` in the trainer's config) to shape rewards without replacing them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from verifiers.registry import register
from verifiers.types import Verdict

_OPEN, _CLOSE = "<think>", "</think>"
_ANY_TAG = re.compile(r"</?think>")


def think_format_reason(completion: str) -> str | None:
    """None if ``completion`` is one ``<think>`` block followed by an answer; else what is wrong."""
    text = completion.strip()
    tags = _ANY_TAG.findall(text)
    if not text.startswith(_OPEN):
        return "does not start with <think>"
    if tags != [_OPEN, _CLOSE]:
        return f"expected one <think>...</think> block, found tags {tags[:6]}"
    thought, _, answer = text[len(_OPEN):].partition(_CLOSE)
    if not thought.strip():
        return "empty <think> block"
    if not answer.strip():
        return "no answer after </think>"
    return None


@register("think_format", isolated=False)  # one regex: cheap and trusted
def think_format(completion: str, example: Mapping[str, Any]) -> Verdict:
    """Correct iff the completion is ``<think>reasoning</think> answer`` (one block, both non-empty)."""
    problem = think_format_reason(completion)
    if problem is None:
        return Verdict("correct", 1.0, "think block then answer")
    return Verdict("incorrect", 0.0, problem)
