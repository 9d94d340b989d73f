"""A weighted combination of verifiers, e.g. correctness plus a small format bonus.

``weighted({"math": 1.0, "think_format": 0.1})`` is a verifier whose reward is the weighted sum
of its components' rewards. Its status is the first component's (the one that says whether
the answer is right), except that the combination is ``unverifiable`` when any component is:
a sum with a missing term is no reward. Each component keeps its own way of running
(sandboxed, batched or in-process) and the same deadline: ``verifiers.dispatch.verify_batch``
judges a combination component by component.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from verifiers.registry import VerifierSpec, get_verifier
from verifiers.types import Verdict


def combine_verdicts(parts: Sequence[Verdict], weights: Sequence[float], names: Sequence[str]) -> Verdict:
    """One verdict from the components' verdicts of one sample."""
    broken = [f"{n}: {v.reason}" for n, v in zip(names, parts) if v.status == "unverifiable"]
    if broken:
        return Verdict("unverifiable", 0.0, "; ".join(broken))
    reward = sum(w * v.reward for w, v in zip(weights, parts))
    reason = "; ".join(f"{n}={v.reward:g} ({v.reason})" if v.reason else f"{n}={v.reward:g}"
                       for n, v in zip(names, parts))
    return Verdict(parts[0].status, float(reward), reason, parts[0].extracted)


def weighted(components: Mapping[str, float]) -> VerifierSpec:
    """A verifier that sums ``weight * reward`` over the named verifiers (first one gives the status)."""
    if not components:
        raise ValueError("weighted() needs at least one verifier, e.g. {'math': 1.0}")
    parts = tuple((get_verifier(n), float(w)) for n, w in components.items())  # a bad name fails now
    name = "weighted(" + ", ".join(f"{n}={w:g}" for n, w in components.items()) + ")"
    return VerifierSpec(name=name, components=parts)
