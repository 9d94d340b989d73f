"""Group-relative advantages for GRPO-style RLVR.

GRPO (DeepSeekMath, arXiv:2402.03300, sec. 4.1.2) replaces the PPO critic with a
group baseline: each prompt is sampled ``G`` times and the advantage of a
completion is its reward minus the mean reward of its group, divided by the
group's reward standard deviation.

Variants supported here:

* Dr. GRPO (arXiv:2503.20783) drops the std division (``std_scaling=False``),
  because dividing by a small group std up-weights prompts that are almost
  always solved or almost always failed.
* ``std_scope="batch"`` keeps the per-group baseline but divides by the std of
  all valid rewards of the batch (TRL ``scale_rewards="batch"``,
  REINFORCE++-baseline).
* DAPO (arXiv:2503.14476) dynamic sampling drops groups whose rewards are all
  equal; :func:`zero_variance_groups` finds them.

Layout convention: a batch of ``B = num_groups * G`` samples is stored
group-major, i.e. group ``g`` is the contiguous block ``[g*G, (g+1)*G)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

StdScope = Literal["group", "batch"]
STD_SCOPES: tuple[str, ...] = ("group", "batch")


def _check_inputs(rewards: Tensor, group_size: int, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """Validate shapes and return ``(rewards, valid)`` as float / bool tensors.

    Args:
        rewards: (B,) rewards.
        group_size: samples per prompt ``G``.
        valid: (B,) bool or None (all valid).

    Returns:
        rewards (B,) floating point with invalid entries replaced by 0 (so a NaN
        reward of an unjudgeable sample cannot leak), and valid (B,) bool.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (B,), got shape {tuple(rewards.shape)}")
    batch_size = rewards.shape[0]
    if batch_size % group_size != 0:
        raise ValueError(
            f"batch size {batch_size} is not a multiple of group_size {group_size}; "
            "every prompt must contribute exactly group_size samples"
        )
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    else:
        if valid.shape != rewards.shape:
            raise ValueError(
                f"valid must have the shape of rewards {tuple(rewards.shape)}, got {tuple(valid.shape)}"
            )
        valid = valid.to(device=rewards.device, dtype=torch.bool)
    rewards = torch.where(valid, rewards, torch.zeros_like(rewards))
    return rewards, valid


def _masked_mean_std(values: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and unbiased std over the last dim, counting only valid entries.

    Args:
        values: (..., N) float, invalid entries already zero.
        valid: (..., N) bool.

    Returns:
        mean (...,), std (...,) and count (...,) of valid entries. With fewer
        than 2 valid entries the std is 0 (not NaN); with none the mean is 0.
    """
    weight = valid.to(values.dtype)  # (..., N)
    count = weight.sum(-1)  # (...,)
    mean = (values * weight).sum(-1) / count.clamp_min(1.0)  # (...,)
    sq_dev = ((values - mean.unsqueeze(-1)) ** 2) * weight  # (..., N)
    var = sq_dev.sum(-1) / (count - 1.0).clamp_min(1.0)  # (...,) Bessel-corrected
    std = torch.where(count >= 2, var.sqrt(), torch.zeros_like(var))  # (...,)
    return mean, std, count


def group_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    std_scaling: bool = True,
    std_scope: StdScope = "group",
    valid: Tensor | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """Group-relative advantages (GRPO outcome supervision, arXiv:2402.03300 eq. 3 ff.).

    ``A_i = (r_i - mean(r_group)) / (std + eps)`` where the baseline is always the
    mean of the valid rewards of the sample's own group and ``std`` is the
    unbiased (Bessel-corrected, as ``torch.std``, TRL and verl use) std of the
    valid rewards of the group (``std_scope="group"``) or of the whole batch
    (``std_scope="batch"``). ``std_scaling=False`` gives Dr. GRPO
    (arXiv:2503.20783): ``A_i = r_i - mean(r_group)``.

    Invalid samples (e.g. the verifier could not judge them) take no part in any
    mean or std, their reward value is ignored (it may be NaN), and their
    advantage is exactly 0. A group or batch with fewer than 2 valid samples has
    std 0. Samples of a group whose valid rewards are all equal get advantage
    exactly 0 (mathematically they already are; this removes the rounding
    residue that ``/ eps`` would otherwise amplify). The output never contains
    NaN for finite valid rewards.

    Args:
        rewards: (B,) rewards, ``B = num_groups * group_size``, group ``g`` is
            ``rewards[g*G:(g+1)*G]``.
        group_size: ``G``, samples per prompt.
        std_scaling: divide by ``std + eps`` (GRPO) or not (Dr. GRPO).
        std_scope: ``"group"`` or ``"batch"``, where the std is taken.
        valid: (B,) bool, or None for all valid.
        eps: added to the std before dividing.

    Returns:
        (B,) advantages, floating point (integer rewards are cast to the default dtype).

    Raises:
        ValueError: if ``group_size < 1``, ``B % group_size != 0``, shapes
            disagree, or ``std_scope`` is unknown.
    """
    if std_scope not in STD_SCOPES:
        raise ValueError(f"unknown std_scope {std_scope!r}; valid: {', '.join(STD_SCOPES)}")
    rewards, valid = _check_inputs(rewards, group_size, valid)
    grouped = rewards.view(-1, group_size)  # (num_groups, G)
    grouped_valid = valid.view(-1, group_size)  # (num_groups, G)

    group_mean, group_std, _ = _masked_mean_std(grouped, grouped_valid)  # (num_groups,) each
    advantages = grouped - group_mean.unsqueeze(-1)  # (num_groups, G)

    if std_scaling:
        if std_scope == "group":
            std = group_std.unsqueeze(-1)  # (num_groups, 1)
        else:
            _, batch_std, _ = _masked_mean_std(rewards, valid)  # () each
            std = batch_std  # ()
        advantages = advantages / (std + eps)  # (num_groups, G)

    no_signal = zero_variance_groups(rewards, group_size, valid).unsqueeze(-1)  # (num_groups, 1)
    keep = grouped_valid & ~no_signal  # (num_groups, G)
    advantages = torch.where(keep, advantages, torch.zeros_like(advantages))  # (num_groups, G)
    return advantages.reshape(-1)  # (B,)


def zero_variance_groups(rewards: Tensor, group_size: int, valid: Tensor | None = None) -> Tensor:
    """Groups that carry no learning signal.

    A group whose valid rewards are all equal has all-zero group-relative
    advantages; DAPO dynamic sampling (arXiv:2503.14476, sec. 3.2) filters such
    groups out and samples more prompts. Groups with fewer than 2 valid samples
    count as zero-variance too.

    Args:
        rewards: (B,) rewards, group-major as in :func:`group_advantages`.
        group_size: ``G``, samples per prompt.
        valid: (B,) bool, or None for all valid.

    Returns:
        (B // G,) bool, True for groups without signal.
    """
    rewards, valid = _check_inputs(rewards, group_size, valid)
    grouped = rewards.view(-1, group_size)  # (num_groups, G)
    grouped_valid = valid.view(-1, group_size)  # (num_groups, G)
    inf = torch.full_like(grouped, float("inf"))  # (num_groups, G)
    group_max = torch.where(grouped_valid, grouped, -inf).amax(-1)  # (num_groups,)
    group_min = torch.where(grouped_valid, grouped, inf).amin(-1)  # (num_groups,)
    count = grouped_valid.sum(-1)  # (num_groups,)
    return (count < 2) | (group_max == group_min)  # (num_groups,)
