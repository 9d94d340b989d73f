"""From verdicts to the rewards the trainer optimizes: which verifier, reward mapping, length shaping."""

from __future__ import annotations

from typing import Sequence

from grpo.config import RewardConfig
from verifiers import Verdict, VerifierSpec, get_verifier
from verifiers.combine import weighted


def build_verifier(reward: RewardConfig, verifier: str | None, task_verifier: str) -> VerifierSpec:
    """``reward.verifiers`` (a weighted combination) if given, else ``verifier``, else the task's."""
    if reward.verifiers:
        return weighted(reward.verifiers)
    return get_verifier(verifier or task_verifier)


def soft_overlong_penalty(length: int, max_length: int, buffer_length: int, factor: float = 1.0) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, https://arxiv.org/abs/2503.14476, eq. 13).

    With a maximum length ``L_max`` and a buffer of ``L_cache`` tokens before it, a completion of
    ``n`` tokens gets an extra (non-positive) reward of::

        0                                  if n <= L_max - L_cache
        ((L_max - L_cache) - n) / L_cache  if L_max - L_cache < n <= L_max   (falls linearly to -1)
        -1                                 if n > L_max

    times ``factor``. Added to the correctness reward, it discourages long rambling smoothly
    instead of by a cliff at truncation.
    """
    if max_length < 1 or not 0 < buffer_length <= max_length:
        raise ValueError(f"need max_length >= 1 and 0 < buffer_length <= max_length; "
                         f"got max_length={max_length}, buffer_length={buffer_length}")
    expected = max_length - buffer_length
    if length <= expected:
        return 0.0
    if length <= max_length:
        return factor * (expected - length) / buffer_length
    return -factor


def shape_verdicts(verdicts: Sequence[Verdict], completion_lengths: Sequence[int], reward: RewardConfig,
                   max_new_tokens: int) -> list[Verdict]:
    """Apply the reward mapping and DAPO's soft overlong punishment; statuses are kept.

    Unverifiable verdicts keep reward 0: they are masked out of the advantages, not scored.
    """
    out = []
    for verdict, length in zip(verdicts, completion_lengths, strict=True):
        if verdict.status == "unverifiable":
            out.append(verdict)
            continue
        value = verdict.reward
        mapped = reward.correct if verdict.status == "correct" else reward.incorrect
        if mapped is not None:
            value = mapped
        reason = verdict.reason
        if reward.overlong_buffer_len:
            penalty = soft_overlong_penalty(length, max_new_tokens, reward.overlong_buffer_len,
                                            reward.overlong_penalty_factor)
            if penalty:
                value += penalty
                reason = f"{reason}; overlong {penalty:+.3f}" if reason else f"overlong {penalty:+.3f}"
        out.append(Verdict(verdict.status, float(value), reason, verdict.extracted))
    return out
