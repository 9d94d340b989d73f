"""A weighted combination of verifiers, e.g. correctness plus a small format bonus.

``weighted({"math": 1.0, "think_format": 0.1})`` is a verifier whose reward is the weighted sum
of its components' rewards. Its status is the first component's (the one that says whether
the answer is right), except that the combination is ``unverifiable`` when any component is:
a sum with a missing term is no reward. Each component keeps its own way of running
(sandboxed, batched or in-process): the combination judges batches through ``verify_batch``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from verifiers.registry import get_verifier, verify_batch
from verifiers.types import Verdict, Verifier


def combine_verdicts(parts: Sequence[Verdict], weights: Sequence[float], names: Sequence[str]) -> Verdict:
    """One verdict from the components' verdicts of one sample."""
    broken = [f"{n}: {v.reason}" for n, v in zip(names, parts) if v.status == "unverifiable"]
    if broken:
        return Verdict("unverifiable", 0.0, "; ".join(broken))
    reward = sum(w * v.reward for w, v in zip(weights, parts))
    reason = "; ".join(f"{n}={v.reward:g} ({v.reason})" if v.reason else f"{n}={v.reward:g}"
                       for n, v in zip(names, parts))
    return Verdict(parts[0].status, float(reward), reason, parts[0].extracted)


def weighted(components: Mapping[str, float]) -> Verifier:
    """A verifier that sums ``weight * reward`` over the named verifiers (first one gives the status)."""
    if not components:
        raise ValueError("weighted() needs at least one verifier, e.g. {'math': 1.0}")
    names = list(components)
    weights = [float(components[n]) for n in names]
    fns = [get_verifier(n) for n in names]  # fails now, with the registry's message, on a bad name

    def batch(completions: Sequence[str], examples: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        per_component = [verify_batch(fn, completions, examples) for fn in fns]
        return [combine_verdicts([c[i] for c in per_component], weights, names) for i in range(len(completions))]

    def combined(completion: str, example: Mapping[str, Any]) -> Verdict:
        return batch([completion], [example])[0]

    combined.batch = batch  # type: ignore[attr-defined]
    combined.components = dict(zip(names, weights))  # type: ignore[attr-defined]
    combined.__name__ = combined.__qualname__ = "weighted(" + ", ".join(f"{n}={w:g}" for n, w in zip(names, weights)) + ")"
    return combined
