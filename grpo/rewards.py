"""From verdicts to the rewards the trainer optimizes: which verifier, reward mapping, length shaping."""

from __future__ import annotations

from typing import Sequence

from grpo.config import RewardConfig
from verifiers import Verdict, Verifier, get_verifier
from verifiers.combine import weighted
from verifiers.length import soft_overlong_penalty


def build_verifier(reward: RewardConfig, verifier: str | None, task_verifier: str) -> Verifier:
    """``reward.verifiers`` (a weighted combination) if given, else ``verifier``, else the task's."""
    if reward.verifiers:
        return weighted(reward.verifiers)
    return get_verifier(verifier or task_verifier)


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
