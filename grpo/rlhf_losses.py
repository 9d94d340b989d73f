"""The math of the reward-model + PPO path, and of DPO: pure functions of tensors.

* :func:`gae`, :func:`whiten`: generalized advantage estimation over token
  sequences (Schulman et al. 2015, arXiv:1506.02438) and masked whitening.
* :func:`value_loss`, :func:`explained_variance`: the PPO critic loss with value
  clipping (PPO, arXiv:1707.06347, as in OpenAI baselines' ``ppo2``) and its
  standard diagnostic.
* :func:`kl_penalty`, :func:`kl_penalized_rewards`: per-token KL to the reference
  policy and the per-token PPO reward built from it (Ziegler et al. 2019,
  arXiv:1909.08593; InstructGPT, arXiv:2203.02155 eq. 2): the sequence score on
  the last real token, ``-kl_coef * KL`` on every token.
* :class:`FixedKLController`, :class:`AdaptiveKLController`: the KL coefficient
  schedule of Ziegler et al. 2019 (sec. 2.2).
* :func:`bradley_terry_loss`: the pairwise reward-model loss (InstructGPT eq. 1),
  with the Llama 2 margin (arXiv:2307.09288) and reward centering (Eisenstein et
  al. 2023, "Helping or Herding?", arXiv:2312.09244).
* :func:`dpo_loss`: direct preference optimization (Rafailov et al. 2023,
  arXiv:2305.18290), with conservative DPO label smoothing (cDPO).

Shapes: ``B`` sequences (completions) by ``T`` completion tokens; ``mask`` (B, T)
marks the real completion tokens (1/True) and is right-padded: a row is real
tokens, then padding. Pair losses take ``B`` pairs as (B,) tensors.

Loss functions return ``(loss, metrics)`` where ``metrics`` are python floats
read with one device sync. Their normalisers (``num_tokens``, ``num_pairs``)
follow ``grpo.losses.aggregate_loss``: pass the FULL batch's count to every
micro-batch call and the micro-batch losses sum to the full-batch loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from grpo.losses import LossAggMode, aggregate_loss, kl_k3

# --------------------------------------------------------------------------- checks


def _check_bt(name: str, x: Tensor, shape: torch.Size | tuple[int, ...]) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must be (B, T) = {tuple(shape)} like mask, got {tuple(x.shape)}")


def _right_padded_mask(mask: Tensor) -> Tensor:
    """``mask`` as bool, checked to be (B, T) and right-padded (no real token after a pad)."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    mask = mask != 0  # (B, T) bool
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError(
            "mask must be right-padded (each row: real completion tokens, then padding); "
            "found a real token after a padding position. Left-padded completions: flip or re-pad them"
        )
    return mask


def _float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _last_token(mask: Tensor) -> Tensor:
    """(B, T) bool, True at the last real token of each row of a right-padded bool mask."""
    next_real = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)  # (B, T)
    return mask & ~next_real


def _check_pairs(**tensors: Tensor) -> int:
    """All tensors (B,) of the same B >= 1; returns B."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first_name, first = next(iter(shapes.items()))
    for name, shape in shapes.items():
        if len(shape) != 1:
            raise ValueError(
                f"{name} must be (B,) one value per pair, got shape {shape}"
                + ("; squeeze the reward head's last dim (.squeeze(-1))" if len(shape) == 2 and shape[1] == 1 else "")
            )
        if shape != first:
            raise ValueError(f"{name} {shape} and {first_name} {first} must have the same shape (B,)")
    if first[0] == 0:
        raise ValueError("no pairs: the pair tensors are empty")
    return first[0]


def _num_pairs(batch: int, num_pairs: float | None) -> float:
    if num_pairs is None:
        return float(batch)
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be > 0, got {num_pairs}")
    return float(num_pairs)


# --------------------------------------------------------------------------- GAE


@torch.no_grad()
def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    truncated: Tensor | None = None,
    bootstrap_value: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over token sequences (arXiv:1506.02438 eq. 16).

    Token ``t`` of a row is the action taken in state ``s_t`` (prompt plus the
    tokens before ``t``); ``values[:, t]`` is the critic's ``V(s_t)``.
    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lam * A_{t+1}``; ``returns = A + values``, the
    critic's regression target.

    After a row's last real token (index ``L - 1``) the episode ends, and what
    follows depends on how the completion ended:

    * it emitted EOS (``truncated[b]`` False, or ``truncated`` None): the
      episode is terminal, ``V(s_L) = 0`` and nothing is bootstrapped;
    * it was cut at the length limit (``truncated[b]`` True): the episode was
      interrupted, not finished, so ``V(s_L) = bootstrap_value[b]``, the
      critic's value of the state after the last real token (the critic's
      output at the last real token's own position).

    Padding is ignored (its rewards and values may be anything, even NaN);
    advantages and returns are exactly 0 there and on rows with no real token.
    ``bootstrap_value`` of non-truncated rows is ignored. Computed without
    gradient: the results are regression targets and advantages, constants of
    the losses. Vectorized over B; a loop over the T positions.

    Args:
        rewards: (B, T) per-token rewards (see :func:`kl_penalized_rewards`).
        values: (B, T) critic values ``V(s_t)`` from the rollout.
        mask: (B, T) bool or 0/1, real completion tokens, right-padded.
        gamma: discount in [0, 1]; 1.0 is usual for language (episodes are short).
        lam: GAE lambda in [0, 1]; 1.0 is Monte-Carlo returns minus the value
            baseline, 0.0 is the one-step TD error.
        truncated: (B,) bool, rows cut at the length limit; None: none was.
        bootstrap_value: (B,) ``V(s_L)`` for the truncated rows; required with
            ``truncated``.

    Returns:
        ``(advantages, returns)``, each (B, T) in the dtype of ``values``.

    Raises:
        ValueError: shapes disagree, the mask is not right-padded, gamma or lam
            outside [0, 1], or ``truncated`` and ``bootstrap_value`` not given together.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    mask = _right_padded_mask(mask)
    _check_bt("rewards", rewards, mask.shape)
    _check_bt("values", values, mask.shape)
    b, t_len = mask.shape
    values = _float(values)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    values = torch.where(mask, values, zero)  # (B, T) padding -> 0 (drops NaN there)
    rewards = torch.where(mask, _float(rewards).to(values), zero)  # (B, T)

    if (truncated is None) != (bootstrap_value is None):
        raise ValueError(
            "pass truncated and bootstrap_value together: truncated (B,) says which rows were cut at the "
            "length limit, bootstrap_value (B,) is the critic's value after their last token"
        )
    end_value = torch.zeros(b, dtype=values.dtype, device=values.device)  # (B,) V(s_L): 0 = terminal
    if truncated is not None and bootstrap_value is not None:
        if tuple(truncated.shape) != (b,) or tuple(bootstrap_value.shape) != (b,):
            raise ValueError(
                f"truncated and bootstrap_value must be (B,) = ({b},), got {tuple(truncated.shape)} "
                f"and {tuple(bootstrap_value.shape)}"
            )
        truncated = truncated.to(device=values.device) != 0  # (B,) bool
        end_value = torch.where(truncated, _float(bootstrap_value).to(values), end_value)  # (B,)

    next_real = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)  # (B, T) is t+1 a real token
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # (B, T)
    next_values = torch.where(next_real, next_values, end_value.unsqueeze(1))  # (B, T) V(s_{t+1})
    deltas = rewards + gamma * next_values - values  # (B, T)
    carry = next_real.to(values.dtype) * (gamma * lam)  # (B, T): the recursion stops at a row's end

    running = torch.zeros(b, dtype=values.dtype, device=values.device)  # (B,) A_{t+1}
    columns: list[Tensor] = []
    for t in reversed(range(t_len)):
        running = deltas[:, t] + carry[:, t] * running  # (B,)
        columns.append(running)
    if columns:
        advantages = torch.stack(columns[::-1], dim=1)  # (B, T)
    else:
        advantages = torch.zeros_like(values)
    advantages = torch.where(mask, advantages, zero)  # (B, T)
    returns = torch.where(mask, advantages + values, zero)  # (B, T)
    return advantages, returns


def whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Masked whitening: ``(x - mean) / sqrt(var + eps)`` over the real tokens of the whole batch.

    Mean and (unbiased, Bessel-corrected) variance are taken over the positions
    where ``mask`` is set. ``shift_mean=False`` adds the mean back, so only the
    scale changes (used for rewards, whose sign carries meaning). Padding comes
    out exactly 0 and may hold anything, even NaN. With fewer than 2 real tokens
    the variance is 0; with none, the output is all 0.

    Args:
        values: (B, T) e.g. advantages from :func:`gae`.
        mask: (B, T) bool or 0/1, real tokens (any layout).
        shift_mean: subtract the mean (True) or keep it (False).
        eps: added to the variance.

    Returns:
        (B, T) whitened values.
    """
    if mask.shape != values.shape:
        raise ValueError(f"mask must have the shape of values {tuple(values.shape)}, got {tuple(mask.shape)}")
    values = _float(values)
    mask = mask.to(values.device) != 0
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    count = mask.sum().to(values.dtype)  # ()
    mean = torch.where(mask, values, zero).sum() / count.clamp_min(1)  # ()
    centered = torch.where(mask, values - mean, zero)  # (B, T)
    var = (centered**2).sum() / (count - 1).clamp_min(1)  # () unbiased
    whitened = centered * torch.rsqrt(var + eps)  # (B, T)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, zero)


# --------------------------------------------------------------------------- critic


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var(returns - values) / Var(returns)`` over the real tokens.

    1 is a perfect critic, 0 one no better than predicting the mean return,
    negative one worse than that. NaN when the returns do not vary (or there is
    no real token): the ratio is undefined there.

    Args:
        values: (B, T) critic predictions.
        returns: (B, T) targets.
        mask: (B, T) bool or 0/1, real tokens.

    Returns:
        a python float.
    """
    if not (values.shape == returns.shape == mask.shape):
        raise ValueError(
            f"values {tuple(values.shape)}, returns {tuple(returns.shape)} and mask {tuple(mask.shape)} "
            "must have the same shape (B, T)"
        )
    with torch.no_grad():
        values = _float(values).detach()
        returns = _float(returns).detach().to(values)
        mask = mask.to(values.device) != 0
        count = int(mask.sum())
        if count == 0:
            return math.nan
        r = returns[mask]  # (N,)
        err = r - values[mask]  # (N,)
        var_r = float(((r - r.mean()) ** 2).mean())
        var_err = float(((err - err.mean()) ** 2).mean())
    return math.nan if var_r == 0.0 else 1.0 - var_err / var_r


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip_eps: float | None,
    loss_agg_mode: LossAggMode = "token-mean",
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    norm_constant: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO critic loss with value clipping.

    ``v_clip = old_values + clamp(values - old_values, -clip_eps, clip_eps)``;
    per token ``0.5 * max((values - returns)^2, (v_clip - returns)^2)``
    (PPO, arXiv:1707.06347; OpenAI baselines ``ppo2``; the clip keeps the
    critic near the values the advantages were computed with). ``clip_eps=None``
    is the plain ``0.5 * (values - returns)^2``. Reduced with
    ``grpo.losses.aggregate_loss`` (default ``token-mean``: the masked mean),
    whose normalisers make micro-batch losses sum to the full-batch loss.
    ``old_values`` and ``returns`` are constants (detached).

    Args:
        values: (B, T) current critic values (with grad).
        old_values: (B, T) critic values at rollout time.
        returns: (B, T) targets from :func:`gae`.
        mask: (B, T) bool or 0/1, real completion tokens.
        clip_eps: > 0, the value clip range (in reward units), or None.
        loss_agg_mode: see ``grpo.losses.aggregate_loss``.
        num_seqs: see ``grpo.losses.aggregate_loss``.
        num_tokens: see ``grpo.losses.aggregate_loss``.
        norm_constant: see ``grpo.losses.aggregate_loss``.

    Returns:
        ``(loss, metrics)``: () scalar loss and python floats over this call's
        real tokens: ``value_clip_frac`` (tokens where the clipped error is the
        larger, so the clip cuts the gradient), ``value_mean``, ``returns_mean``,
        ``value_mse`` (unclipped), ``explained_variance`` (of the current
        values, NaN if the returns are constant), ``num_tokens``.
    """
    if clip_eps is not None and clip_eps <= 0:
        raise ValueError(f"clip_eps must be > 0 (or None for no value clipping), got {clip_eps}")
    if mask.shape != values.shape:
        raise ValueError(f"mask must be (B, T) = {tuple(values.shape)}, got {tuple(mask.shape)}")
    _check_bt("old_values", old_values, values.shape)
    _check_bt("returns", returns, values.shape)
    mask = mask.to(values.device) != 0  # (B, T)
    old_values, returns = old_values.detach().to(values), returns.detach().to(values)
    unclipped = (values - returns) ** 2  # (B, T)
    if clip_eps is None:
        per_token = 0.5 * unclipped  # (B, T)
        clipped_frac_mask = torch.zeros_like(mask)
    else:
        v_clip = old_values + (values - old_values).clamp(-clip_eps, clip_eps)  # (B, T)
        clipped = (v_clip - returns) ** 2  # (B, T)
        per_token = 0.5 * torch.maximum(unclipped, clipped)  # (B, T)
        clipped_frac_mask = clipped.detach() > unclipped.detach()  # (B, T)
    loss = aggregate_loss(
        per_token, mask, loss_agg_mode, num_seqs=num_seqs, num_tokens=num_tokens, norm_constant=norm_constant
    )
    with torch.no_grad():
        v = values.detach()
        zero = torch.zeros((), dtype=v.dtype, device=v.device)
        count = mask.sum().to(v.dtype)
        denom = count.clamp_min(1)
        stats = torch.stack(
            [
                (clipped_frac_mask & mask).sum() / denom,
                torch.where(mask, v, zero).sum() / denom,
                torch.where(mask, returns, zero).sum() / denom,
                torch.where(mask, unclipped.detach(), zero).sum() / denom,
                count,
            ]
        ).tolist()
    names = ("value_clip_frac", "value_mean", "returns_mean", "value_mse", "num_tokens")
    metrics = dict(zip(names, (float(s) for s in stats)))
    metrics["explained_variance"] = explained_variance(v, returns, mask)
    return loss, metrics


# --------------------------------------------------------------------------- KL penalty in the reward

KLEstimator = Literal["k1", "k2", "k3"]


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k1 estimator of KL(pi || pi_ref) per token: ``log pi(o) - log pi_ref(o)``, ``o ~ pi``.

    Unbiased; a single token's estimate can be negative. The PPO reward penalty
    of Ziegler et al. 2019 and InstructGPT. (B, T) -> (B, T).
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and ref_logprobs {tuple(ref_logprobs.shape)} differ")
    return logprobs - ref_logprobs


def kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k2 estimator per token: ``0.5 * (log pi(o) - log pi_ref(o))^2``; biased, never negative,
    low variance (Schulman, http://joschu.net/blog/kl-approx.html). (B, T) -> (B, T)."""
    return 0.5 * kl_k1(logprobs, ref_logprobs) ** 2


_KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
KL_ESTIMATORS: tuple[str, ...] = tuple(_KL_ESTIMATORS)


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: KLEstimator = "k1") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) of the sampled tokens, by name.

    ``"k1"`` (:func:`kl_k1`, the usual PPO reward penalty), ``"k2"``
    (:func:`kl_k2`) or ``"k3"`` (``grpo.losses.kl_k3``, GRPO's).

    Args:
        logprobs: (B, T) policy log-probs of the sampled tokens (the rollout's).
        ref_logprobs: (B, T) reference-policy log-probs of the same tokens.
        estimator: one of :data:`KL_ESTIMATORS`.

    Returns:
        (B, T) per-token KL estimates.
    """
    fn = _KL_ESTIMATORS.get(estimator)
    if fn is None:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")
    return fn(logprobs, ref_logprobs)


def kl_penalized_rewards(
    score: Tensor,
    kl: Tensor,
    mask: Tensor,
    *,
    kl_coef: float,
    score_clip: float | None = None,
    truncated: Tensor | None = None,
    missing_eos_penalty: float = 0.0,
) -> Tensor:
    """Per-token PPO rewards: the sequence score on the last real token, minus ``kl_coef * KL`` on every token.

    ``r_t = -kl_coef * kl_t + [t = L - 1] * s`` (Ziegler et al. 2019,
    arXiv:1909.08593 sec. 2; InstructGPT, arXiv:2203.02155 eq. 2), where the
    score ``s`` is, in this order:

    1. clamped to ``[-score_clip, score_clip]`` when ``score_clip`` is set
       (bounds what an over-optimized reward model can pay);
    2. lowered by ``missing_eos_penalty`` on rows cut at the length limit
       (``truncated``), which never finished their answer ("The N+
       implementation details of RLHF with PPO", arXiv:2403.17031).
       It comes after the clip so that a clipped score still feels it.

    Padding gets reward exactly 0 (its KL may be anything, even NaN).

    Args:
        score: (B,) sequence scores (reward model and/or verifier).
        kl: (B, T) per-token KL (:func:`kl_penalty`).
        mask: (B, T) bool or 0/1, real completion tokens, right-padded; every
            row needs at least one real token to carry its score.
        kl_coef: >= 0 (a controller's current ``kl_coef``).
        score_clip: > 0, or None for no clipping.
        truncated: (B,) bool, rows that hit the length limit without EOS;
            required when ``missing_eos_penalty`` is not 0.
        missing_eos_penalty: >= 0, subtracted from the score of truncated rows.

    Returns:
        (B, T) rewards for :func:`gae`.
    """
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if score_clip is not None and score_clip <= 0:
        raise ValueError(f"score_clip must be > 0 (or None), got {score_clip}")
    if missing_eos_penalty < 0:
        raise ValueError(f"missing_eos_penalty must be >= 0 (it is subtracted), got {missing_eos_penalty}")
    mask = _right_padded_mask(mask)
    _check_bt("kl", kl, mask.shape)
    b = mask.shape[0]
    if tuple(score.shape) != (b,):
        raise ValueError(f"score must be (B,) = ({b},), one per sequence, got {tuple(score.shape)}")
    empty = ~mask.any(-1)  # (B,)
    if empty.any():
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"rows {rows} have no real token, so their score has nowhere to go; drop empty completions "
            "or count the EOS token as a real completion token in the mask"
        )
    kl = _float(kl)
    score = _float(score).to(kl)
    if score_clip is not None:
        score = score.clamp(-score_clip, score_clip)  # (B,)
    if missing_eos_penalty != 0.0:
        if truncated is None:
            raise ValueError("missing_eos_penalty needs truncated (B,): which rows hit the length limit")
        if tuple(truncated.shape) != (b,):
            raise ValueError(f"truncated must be (B,) = ({b},), got {tuple(truncated.shape)}")
        score = score - missing_eos_penalty * (truncated.to(score.device) != 0).to(score.dtype)  # (B,)
    zero = torch.zeros((), dtype=kl.dtype, device=kl.device)
    rewards = torch.where(mask, -kl_coef * kl, zero)  # (B, T)
    return rewards + torch.where(_last_token(mask), score.unsqueeze(1), zero)  # (B, T)


# --------------------------------------------------------------------------- KL controllers
#
# Immutable: ``update`` returns the next controller, so a step either applies
# completely or not at all, and a checkpoint is just ``state_dict()``.

KL_CONTROLLER_KINDS: tuple[str, ...] = ("fixed", "adaptive")
KLControllerKind = Literal["fixed", "adaptive"]

ADAPTIVE_KL_ERROR_CLIP: float = 0.2
"""The proportional error of :class:`AdaptiveKLController` is clipped to +-this (Ziegler et al. 2019)."""


def _check_coef(kl_coef: float) -> None:
    if not (math.isfinite(kl_coef) and kl_coef >= 0):
        raise ValueError(f"kl_coef must be a finite number >= 0, got {kl_coef}")


def _check_observation(current_kl: float, n_steps: int) -> None:
    if not math.isfinite(current_kl):
        raise ValueError(f"current_kl must be finite, got {current_kl}: a NaN/inf KL would poison the coefficient")
    if n_steps <= 0:
        raise ValueError(f"n_steps must be > 0, got {n_steps}")


@dataclass(frozen=True)
class FixedKLController:
    """A constant KL coefficient."""

    kl_coef: float

    def __post_init__(self) -> None:
        _check_coef(self.kl_coef)

    def update(self, current_kl: float, n_steps: int) -> FixedKLController:
        """The same controller (the observation is checked, then ignored)."""
        _check_observation(current_kl, n_steps)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "fixed", "kl_coef": self.kl_coef}


@dataclass(frozen=True)
class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. 2019 (arXiv:1909.08593 sec. 2.2).

    After each step with measured KL ``KL_t`` over ``n_steps`` samples:
    ``e_t = clip(KL_t / target - 1, -0.2, 0.2)``,
    ``kl_coef <- kl_coef * (1 + e_t * n_steps / horizon)``: the coefficient
    grows while the KL is above ``target`` and shrinks while below, by at most
    20% per ``horizon`` samples. ``KL_t`` is the mean over sequences of the
    summed per-token KL.
    """

    kl_coef: float
    target: float  # the KL (nats per sequence) to hold
    horizon: float  # samples over which the coefficient moves by the clipped error

    def __post_init__(self) -> None:
        _check_coef(self.kl_coef)
        if not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"target must be > 0 (nats per sequence), got {self.target}")
        if not (math.isfinite(self.horizon) and self.horizon > 0):
            raise ValueError(f"horizon must be > 0 (samples), got {self.horizon}")

    def update(self, current_kl: float, n_steps: int) -> AdaptiveKLController:
        """The controller after observing ``current_kl`` over ``n_steps`` samples."""
        _check_observation(current_kl, n_steps)
        if n_steps > self.horizon:
            # with the error at -0.2 the factor reaches 0 at n_steps = 5 * horizon; one step
            # covering more than the horizon is a configuration mistake anyway
            raise ValueError(
                f"n_steps {n_steps} exceeds horizon {self.horizon}; raise horizon above the samples per step"
            )
        error = min(max(current_kl / self.target - 1.0, -ADAPTIVE_KL_ERROR_CLIP), ADAPTIVE_KL_ERROR_CLIP)
        return replace(self, kl_coef=self.kl_coef * (1.0 + error * n_steps / self.horizon))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "adaptive", "kl_coef": self.kl_coef, "target": self.target, "horizon": self.horizon}


KLController = FixedKLController | AdaptiveKLController


def make_kl_controller(
    kind: KLControllerKind, *, kl_coef: float, target: float | None = None, horizon: float | None = None
) -> KLController:
    """The one constructor of KL controllers.

    Args:
        kind: ``"fixed"`` or ``"adaptive"``.
        kl_coef: initial (for fixed: constant) coefficient, >= 0.
        target: adaptive only, the KL to hold (nats per sequence); ignored by fixed.
        horizon: adaptive only, in samples (Ziegler et al. use 10000); ignored by fixed.
    """
    if kind == "fixed":
        return FixedKLController(kl_coef=float(kl_coef))
    if kind == "adaptive":
        if target is None or horizon is None:
            raise ValueError("the adaptive KL controller needs target (nats per sequence) and horizon (samples)")
        return AdaptiveKLController(kl_coef=float(kl_coef), target=float(target), horizon=float(horizon))
    raise ValueError(f"unknown KL controller kind {kind!r}; valid: {', '.join(KL_CONTROLLER_KINDS)}")


def kl_controller_from_state_dict(state: Mapping[str, Any]) -> KLController:
    """Rebuild a controller from its ``state_dict()`` (resume from a checkpoint)."""
    kind = state.get("kind")
    if kind not in KL_CONTROLLER_KINDS:
        raise ValueError(
            f"KL controller state has kind {kind!r}; valid: {', '.join(KL_CONTROLLER_KINDS)} "
            "(is this a state_dict() of a KL controller?)"
        )
    if "kl_coef" not in state:
        raise ValueError("KL controller state has no 'kl_coef'")
    return make_kl_controller(kind, kl_coef=state["kl_coef"], target=state.get("target"), horizon=state.get("horizon"))


# --------------------------------------------------------------------------- preference losses


def _accuracy(diff: Tensor) -> Tensor:
    """() share of pairs ranked right by ``diff = chosen - rejected``; a tie counts half."""
    return ((diff > 0).to(diff.dtype) + 0.5 * (diff == 0).to(diff.dtype)).mean()


def bradley_terry_loss(
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    margin: Tensor | float | None = None,
    center_coef: float = 0.0,
    *,
    num_pairs: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Pairwise reward-model loss under the Bradley-Terry model.

    ``loss = sum_i [-log sigmoid(r_c - r_r - m_i) + center_coef * (r_c + r_r)^2] / num_pairs``
    (InstructGPT, arXiv:2203.02155 eq. 1). The margin ``m`` (Llama 2,
    arXiv:2307.09288 sec. 3.2.2) demands a larger gap on pairs known to differ
    more. The centering term (Eisenstein et al. 2023, arXiv:2312.09244) pins
    the reward's free offset near 0, which the pairwise loss alone leaves
    undetermined. ``-log sigmoid`` is computed as ``softplus(-x)``: no overflow
    for large gaps.

    Args:
        chosen_rewards: (B,) reward of each pair's preferred completion (with grad).
        rejected_rewards: (B,) reward of the other one.
        margin: (B,) per-pair margins, a float for all, or None (0).
        center_coef: >= 0, weight of the centering term.
        num_pairs: the normaliser, > 0; default B. For gradient accumulation
            pass the full batch's pair count to every micro-batch call.

    Returns:
        ``(loss, metrics)``: () scalar loss and python floats over this call's
        pairs: ``bt_loss`` (the pairwise term's mean), ``center_loss`` (mean
        of ``(r_c + r_r)^2``, unweighted), ``accuracy`` (chosen scored higher;
        a tie counts half), ``margin_mean`` (mean ``r_c - r_r``),
        ``chosen_mean``, ``rejected_mean``, ``num_pairs``.
    """
    b = _check_pairs(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    if center_coef < 0:
        raise ValueError(f"center_coef must be >= 0, got {center_coef}")
    denom = _num_pairs(b, num_pairs)
    chosen, rejected = _float(chosen_rewards), _float(rejected_rewards).to(_float(chosen_rewards))
    diff = chosen - rejected  # (B,)
    shifted = diff
    if margin is not None:
        if isinstance(margin, Tensor):
            if tuple(margin.shape) != (b,):
                raise ValueError(f"margin must be (B,) = ({b},) or a float, got {tuple(margin.shape)}")
            margin = margin.detach().to(diff)
        shifted = diff - margin  # (B,)
    pair_loss = -F.logsigmoid(shifted)  # (B,)
    center = (chosen + rejected) ** 2  # (B,)
    loss = (pair_loss + center_coef * center).sum() / denom if center_coef else pair_loss.sum() / denom
    with torch.no_grad():
        d = diff.detach()
        stats = torch.stack(
            [
                pair_loss.detach().mean(),
                center.detach().mean(),
                _accuracy(d),
                d.mean(),
                chosen.detach().mean(),
                rejected.detach().mean(),
            ]
        ).tolist()
    names = ("bt_loss", "center_loss", "accuracy", "margin_mean", "chosen_mean", "rejected_mean")
    metrics = dict(zip(names, (float(s) for s in stats)))
    metrics["num_pairs"] = float(b)
    return loss, metrics


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
    num_pairs: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Direct preference optimization (Rafailov et al. 2023, arXiv:2305.18290 eq. 7).

    With implicit rewards ``r_c = beta * (log pi(y_c) - log pi_ref(y_c))`` and
    ``r_r`` likewise, ``z = r_c - r_r`` and
    ``loss = sum_i [-(1 - eps) log sigmoid(z) - eps log sigmoid(-z)] / num_pairs``.
    ``eps = label_smoothing > 0`` is conservative DPO (cDPO, Mitchell 2023,
    https://ericmitchell.ai/cdpo.pdf): the labels are taken as flipped with
    probability ``eps``. The reference log-probs are constants (detached).

    The log-probs are of whole completions: the sum over their real tokens
    (not the mean), given the prompt.

    Args:
        policy_chosen_logps: (B,) log pi(chosen | prompt) (with grad).
        policy_rejected_logps: (B,) log pi(rejected | prompt) (with grad).
        ref_chosen_logps: (B,) log pi_ref(chosen | prompt).
        ref_rejected_logps: (B,) log pi_ref(rejected | prompt).
        beta: > 0, the inverse strength of the implicit KL constraint (0.1 is usual).
        label_smoothing: in [0, 0.5), cDPO's label noise.
        num_pairs: the normaliser, > 0; default B (see :func:`bradley_terry_loss`).

    Returns:
        ``(loss, metrics)``: () scalar loss and python floats, means over this
        call's pairs: ``rewards_chosen``, ``rewards_rejected`` (the implicit
        rewards), ``reward_accuracy`` (r_c > r_r; a tie counts half),
        ``reward_margin`` (r_c - r_r), ``logps_chosen``, ``logps_rejected``
        (policy log-probs: if both fall while the margin grows, the policy is
        moving mass away from both answers), ``num_pairs``.
    """
    b = _check_pairs(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    denom = _num_pairs(b, num_pairs)
    pc = _float(policy_chosen_logps)
    pr = _float(policy_rejected_logps).to(pc)
    rc, rr = ref_chosen_logps.detach().to(pc), ref_rejected_logps.detach().to(pc)
    chosen_rewards = beta * (pc - rc)  # (B,)
    rejected_rewards = beta * (pr - rr)  # (B,)
    logits = chosen_rewards - rejected_rewards  # (B,)
    per_pair = -(1.0 - label_smoothing) * F.logsigmoid(logits)  # (B,)
    if label_smoothing:
        per_pair = per_pair - label_smoothing * F.logsigmoid(-logits)  # (B,)
    loss = per_pair.sum() / denom
    with torch.no_grad():
        z = logits.detach()
        stats = torch.stack(
            [
                chosen_rewards.detach().mean(),
                rejected_rewards.detach().mean(),
                _accuracy(z),
                z.mean(),
                pc.detach().mean(),
                pr.detach().mean(),
            ]
        ).tolist()
    names = ("rewards_chosen", "rewards_rejected", "reward_accuracy", "reward_margin", "logps_chosen", "logps_rejected")
    metrics = dict(zip(names, (float(s) for s in stats)))
    metrics["num_pairs"] = float(b)
    return loss, metrics
