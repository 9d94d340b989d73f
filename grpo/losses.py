"""Policy-gradient losses for GRPO-style RLVR.

Pure functions of tensors:

* :func:`token_logprobs`, :func:`entropy_from_logits`: per-token quantities from
  the policy's logits.
* :func:`kl_k3`: the k3 estimator of KL(pi || pi_ref) (Schulman, "Approximating
  KL divergence", 2020), the KL penalty of GRPO (DeepSeekMath, arXiv:2402.03300, eq. 4).
* :func:`clipped_surrogate`: the PPO clipped objective with separate lower and
  upper clip ranges (DAPO "clip-higher", arXiv:2503.14476 sec. 3.1).
* :func:`truncated_importance_weights`: truncated importance sampling (TIS), the
  correction for a sampler (vLLM) whose log-probs differ from the trainer's.
* :func:`aggregate_loss`: reduces a (B, T) per-token loss to a scalar with one of
  the modes in :data:`LOSS_AGG_MODES`.
* :func:`policy_loss`: all of the above in one call, plus metrics.

Shapes: ``B`` sequences (completions) by ``T`` completion tokens, vocabulary ``V``.
``mask`` (B, T) marks the real completion tokens (1/True) against padding.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor

LossAggMode = Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"]

KL_LOG_RATIO_CLAMP: float = 20.0
"""|log(pi_ref / pi)| is clamped to this before ``exp`` in :func:`kl_k3`."""


# --------------------------------------------------------------------------- per-token quantities


def _scaled_logits(logits: Tensor, temperature: float) -> Tensor:
    """(B, T, V) logits divided by ``temperature``, upcast to float32 if half precision."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, T, V), got shape {tuple(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-probability of each sampled token under ``softmax(logits / temperature)``.

    Computed as ``logit[token] - logsumexp(logits)`` so no (B, T, V) log-softmax
    tensor is materialised. Use the sampling temperature of the rollout so that
    the ratio to the rollout's log-probs is consistent. Half-precision logits are
    upcast to float32 for exactness.

    Args:
        logits: (B, T, V) logits, position ``t`` predicting ``tokens[:, t]``.
        tokens: (B, T) long, the sampled tokens.
        temperature: > 0.

    Returns:
        (B, T) log-probabilities.
    """
    logits = _scaled_logits(logits, temperature)  # (B, T, V)
    if tokens.shape != logits.shape[:2]:
        raise ValueError(f"tokens must be (B, T) = {tuple(logits.shape[:2])}, got {tuple(tokens.shape)}")
    picked = logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of ``softmax(logits / temperature)`` at every position.

    ``H = -sum_v p_v log p_v``; entries with ``p_v = 0`` (e.g. ``-inf`` logits)
    contribute 0. Half-precision logits are upcast to float32.

    Args:
        logits: (B, T, V) logits.
        temperature: > 0.

    Returns:
        (B, T) entropies in nats.
    """
    logits = _scaled_logits(logits, temperature)  # (B, T, V)
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    p = logp.exp()  # (B, T, V)
    plogp = torch.where(p > 0, p * logp, torch.zeros_like(p))  # (B, T, V)
    return -plogp.sum(-1)  # (B, T)


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k3 estimator of KL(pi || pi_ref) per token.

    With ``x = log pi_ref(o) - log pi(o)`` for ``o ~ pi``, ``k3 = exp(x) - x - 1``
    is unbiased for KL(pi || pi_ref) and never negative (Schulman, "Approximating
    KL divergence", http://joschu.net/blog/kl-approx.html; GRPO, arXiv:2402.03300
    eq. 4). It is computed as ``expm1(x) - x``, which is accurate for small ``x``,
    then clamped at 0 against rounding. For numerical safety ``x`` is clamped to
    ``[-KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP]`` (= +-20) before ``exp``; tokens
    beyond the clamp get a bounded value and no gradient.

    Args:
        logprobs: (B, T) log pi of the sampled tokens (with grad).
        ref_logprobs: (B, T) log pi_ref of the same tokens.

    Returns:
        (B, T) non-negative KL estimates.
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(
            f"logprobs {tuple(logprobs.shape)} and ref_logprobs {tuple(ref_logprobs.shape)} differ in shape"
        )
    log_ratio = (ref_logprobs - logprobs).clamp(-KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP)  # (B, T)
    return (torch.expm1(log_ratio) - log_ratio).clamp_min(0.0)  # (B, T)


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_eps_low: float,
    clip_eps_high: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO clipped surrogate loss per token, with asymmetric clip range.

    ``ratio = exp(logprobs - old_logprobs)``;
    ``loss = -min(ratio * A, clamp(ratio, 1 - clip_eps_low, 1 + clip_eps_high) * A)``
    (PPO; GRPO arXiv:2402.03300 eq. 3). A larger ``clip_eps_high`` than
    ``clip_eps_low`` is DAPO's "clip-higher" (arXiv:2503.14476 sec. 3.1, e.g.
    0.2 / 0.28). ``old_logprobs`` and ``advantages`` are treated as constants
    (detached).

    Args:
        logprobs: (B, T) log-probs under the current policy (with grad).
        old_logprobs: (B, T) log-probs under the rollout policy.
        advantages: (B,) per-sequence advantages, broadcast over tokens, or
            (B, T) per-token advantages.
        clip_eps_low: >= 0, lower clip range.
        clip_eps_high: >= 0, upper clip range.

    Returns:
        ``(per_token_loss, clipped_low, clipped_high)``, each (B, T):
        the loss; bool where the clip cuts the gradient because
        ``ratio < 1 - clip_eps_low`` and ``A < 0``; bool where
        ``ratio > 1 + clip_eps_high`` and ``A > 0``.
    """
    if clip_eps_low < 0 or clip_eps_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got low={clip_eps_low}, high={clip_eps_high}")
    if logprobs.dim() != 2 or logprobs.shape != old_logprobs.shape:
        raise ValueError(
            f"logprobs and old_logprobs must both be (B, T), got {tuple(logprobs.shape)} "
            f"and {tuple(old_logprobs.shape)}"
        )
    advantages = advantages.detach()
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)  # (B, 1)
    if advantages.shape[0] != logprobs.shape[0] or advantages.shape[1] not in (1, logprobs.shape[1]):
        raise ValueError(
            f"advantages must be (B,) or (B, T) for logprobs {tuple(logprobs.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    ratio = torch.exp(logprobs - old_logprobs.detach())  # (B, T)
    unclipped = ratio * advantages  # (B, T)
    clipped = ratio.clamp(1.0 - clip_eps_low, 1.0 + clip_eps_high) * advantages  # (B, T)
    per_token_loss = -torch.minimum(unclipped, clipped)  # (B, T)
    with torch.no_grad():
        clipped_low = (ratio < 1.0 - clip_eps_low) & (advantages < 0)  # (B, T)
        clipped_high = (ratio > 1.0 + clip_eps_high) & (advantages > 0)  # (B, T)
    return per_token_loss, clipped_low, clipped_high


def truncated_importance_weights(trainer_logprobs: Tensor, sampler_logprobs: Tensor, cap: float) -> Tensor:
    """Truncated importance-sampling (TIS) weights: ``min(pi_trainer / pi_sampler, cap)`` per token.

    A fast sampler (vLLM) and the trainer compute slightly different
    probabilities for the same weights (other kernels, precision), so the samples
    come from ``pi_sampler``, not from the ``pi_old`` the PPO ratio assumes.
    Weighting each token's surrogate by ``pi_old / pi_sampler``, capped at ``cap``
    to bound the variance, corrects for that (Yao et al., "Your Efficient RL
    Framework Secretly Brings You Off-Policy RL Training", 2025; the truncation is
    that of IMPALA's V-trace, arXiv:1802.01561). The weights are constants
    (detached). When the two agree exactly, as with the HF engine, every weight is 1.

    Args:
        trainer_logprobs: (B, T) trainer log-probs of the sampled tokens under the
            weights that sampled them (``pi_old``).
        sampler_logprobs: (B, T) the sampler's log-probs of the same tokens.
        cap: > 0, the truncation; weights above it are set to it.

    Returns:
        (B, T) weights in ``[0, cap]``.
    """
    if cap <= 0:
        raise ValueError(f"cap must be > 0, got {cap}")
    if trainer_logprobs.shape != sampler_logprobs.shape:
        raise ValueError(
            f"trainer_logprobs {tuple(trainer_logprobs.shape)} and sampler_logprobs "
            f"{tuple(sampler_logprobs.shape)} differ in shape"
        )
    log_ratio = (trainer_logprobs.detach() - sampler_logprobs.detach()).float()  # (B, T)
    return torch.exp(log_ratio.clamp(max=math.log(cap)))  # (B, T); clamping first never overflows


# --------------------------------------------------------------------------- aggregation
#
# Every mode is  sum over masked tokens of (loss * weight) / constant, where the
# weight and constant depend only on the mode, the row's own mask and the
# normalisers. So when a batch is split into micro-batches by rows and each
# micro-batch call gets the FULL batch's num_seqs / num_tokens, the micro-batch
# losses sum to the full-batch loss and accumulated gradients equal the
# full-batch gradient. With the defaults (counts of the micro-batch) they do not.


def _masked(per_token_loss: Tensor, mask: Tensor) -> Tensor:
    """(B, T) loss with padding set to exactly 0 (also drops NaN/inf in padding)."""
    return torch.where(mask, per_token_loss, torch.zeros_like(per_token_loss))


def _resolve(value: float | None, default: Tensor, name: str) -> Tensor | float:
    """An explicit normaliser (must be > 0) or the default count clamped to >= 1."""
    if value is None:
        return default.clamp_min(1)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value} (clamp the count to >= 1)")
    return value


def _num_seqs(mask: Tensor, num_seqs: float | None) -> Tensor | float:
    return _resolve(num_seqs, mask.any(-1).sum(), "num_seqs")


def _token_mean(
    per_token_loss: Tensor,
    mask: Tensor,
    *,
    num_seqs: float | None,
    num_tokens: float | None,
    norm_constant: float | None,
) -> Tensor:
    """DAPO token-level mean (arXiv:2503.14476 sec. 3.3): sum(loss) / num_tokens."""
    denom = _resolve(num_tokens, mask.sum(), "num_tokens")
    return _masked(per_token_loss, mask).sum() / denom


def _seq_mean_token_mean(
    per_token_loss: Tensor,
    mask: Tensor,
    *,
    num_seqs: float | None,
    num_tokens: float | None,
    norm_constant: float | None,
) -> Tensor:
    """Original GRPO (arXiv:2402.03300 eq. 3): mean over tokens of a sequence, then over sequences."""
    seq_len = mask.sum(-1).clamp_min(1).to(per_token_loss.dtype)  # (B,)
    seq_loss = _masked(per_token_loss, mask).sum(-1) / seq_len  # (B,), 0 for empty rows
    return seq_loss.sum() / _num_seqs(mask, num_seqs)


def _seq_mean_token_sum_norm(
    per_token_loss: Tensor,
    mask: Tensor,
    *,
    num_seqs: float | None,
    num_tokens: float | None,
    norm_constant: float | None,
) -> Tensor:
    """Dr. GRPO (arXiv:2503.20783): token sum per sequence / constant, mean over sequences."""
    if norm_constant is None:
        raise ValueError(
            "loss aggregation mode 'seq-mean-token-sum-norm' needs norm_constant "
            "(the max completion length, constant across steps)"
        )
    if norm_constant <= 0:
        raise ValueError(f"norm_constant must be > 0, got {norm_constant}")
    return _masked(per_token_loss, mask).sum() / (_num_seqs(mask, num_seqs) * norm_constant)


LossAggFn = Callable[..., Tensor]

_LOSS_AGG_FNS: dict[str, LossAggFn] = {
    "seq-mean-token-mean": _seq_mean_token_mean,
    "token-mean": _token_mean,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}

LOSS_AGG_MODES: tuple[str, ...] = tuple(_LOSS_AGG_FNS)


def loss_normalizers(mask: Tensor) -> tuple[float, float]:
    """``(num_seqs, num_tokens)`` of a mask, as :func:`aggregate_loss` defaults them.

    Call it on the FULL batch's mask and pass the results to every micro-batch
    call for gradient accumulation.

    Args:
        mask: (B, T) bool or 0/1.

    Returns:
        number of rows with at least one real token and number of real tokens,
        each clamped to >= 1.
    """
    mask = mask != 0  # (B, T)
    return float(max(int(mask.any(-1).sum()), 1)), float(max(int(mask.sum()), 1))


def aggregate_loss(
    per_token_loss: Tensor,
    mask: Tensor,
    mode: LossAggMode,
    *,
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    norm_constant: float | None = None,
) -> Tensor:
    """Reduce a per-token loss to a scalar.

    Modes (see :data:`LOSS_AGG_MODES`):

    * ``"token-mean"`` (DAPO, arXiv:2503.14476): ``sum(loss * mask) / num_tokens``;
      every token weighs the same, long sequences are not down-weighted.
    * ``"seq-mean-token-mean"`` (GRPO, arXiv:2402.03300):
      ``sum_b [sum_t(loss * mask) / max(1, sum_t mask)] / num_seqs``; fully
      masked rows contribute 0.
    * ``"seq-mean-token-sum-norm"`` (Dr. GRPO, arXiv:2503.20783):
      ``sum(loss * mask) / (num_seqs * norm_constant)``; ``norm_constant`` (the
      max completion length, constant across steps) is required.

    Defaults: ``num_tokens = mask.sum()``, ``num_seqs`` = rows with at least one
    real token, each clamped to >= 1. Gradient accumulation: split the batch by
    rows into micro-batches and pass the FULL batch's ``num_seqs`` /
    ``num_tokens`` (:func:`loss_normalizers`) to each micro-batch call; then the
    SUM of the micro-batch losses equals the full-batch loss and the accumulated
    gradient equals the full-batch gradient (do not divide by the number of
    micro-batches). Normalisers a mode does not use are ignored. Padding
    positions are excluded with ``where``, so NaN/inf there does not leak into
    the forward value.

    Args:
        per_token_loss: (B, T) loss per token.
        mask: (B, T) bool or 0/1, real completion tokens.
        mode: one of :data:`LOSS_AGG_MODES`.
        num_seqs: override of the sequence count, > 0.
        num_tokens: override of the token count, > 0.
        norm_constant: Dr. GRPO constant, > 0.

    Returns:
        () scalar loss.

    Raises:
        ValueError: unknown mode, shape mismatch, missing ``norm_constant`` for
            Dr. GRPO, or a non-positive normaliser.
    """
    fn = _LOSS_AGG_FNS.get(mode)
    if fn is None:
        raise ValueError(f"unknown loss aggregation mode {mode!r}; valid: {', '.join(LOSS_AGG_MODES)}")
    if per_token_loss.dim() != 2 or mask.shape != per_token_loss.shape:
        raise ValueError(
            f"per_token_loss and mask must both be (B, T), got {tuple(per_token_loss.shape)} "
            f"and {tuple(mask.shape)}"
        )
    mask = mask.to(per_token_loss.device) != 0  # (B, T) bool
    return fn(per_token_loss, mask, num_seqs=num_seqs, num_tokens=num_tokens, norm_constant=norm_constant)


# --------------------------------------------------------------------------- full policy loss


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_eps_low: float,
    clip_eps_high: float,
    loss_agg_mode: LossAggMode,
    kl_coef: float = 0.0,
    ref_logprobs: Tensor | None = None,
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    norm_constant: float | None = None,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """GRPO policy loss: clipped surrogate + ``kl_coef`` * k3 KL, aggregated.

    Per token: ``clipped_surrogate(...) + kl_coef * kl_k3(logprobs, ref_logprobs)``
    (GRPO, arXiv:2402.03300 eq. 3), reduced by :func:`aggregate_loss` with
    ``loss_agg_mode`` and the normalisers (see there for gradient accumulation).
    ``kl_coef = 0`` with no reference is the DAPO / Dr. GRPO setting. A reference
    may be given with ``kl_coef = 0`` to monitor the KL only. ``is_weights``
    (:func:`truncated_importance_weights`) multiply the surrogate per token, not
    the KL term.

    Args:
        logprobs: (B, T) current-policy log-probs of the sampled tokens (with grad).
        old_logprobs: (B, T) rollout-policy log-probs.
        advantages: (B,) per-sequence (or (B, T) per-token) advantages.
        mask: (B, T) bool or 0/1, real completion tokens.
        clip_eps_low: lower clip range.
        clip_eps_high: upper clip range (DAPO clip-higher when larger).
        loss_agg_mode: one of :data:`LOSS_AGG_MODES`.
        kl_coef: >= 0, weight of the k3 KL penalty.
        ref_logprobs: (B, T) reference-policy log-probs; required if ``kl_coef > 0``.
        num_seqs: see :func:`aggregate_loss`.
        num_tokens: see :func:`aggregate_loss`.
        norm_constant: see :func:`aggregate_loss`.
        is_weights: (B, T) constant per-token weights of the surrogate (TIS), or None.

    Returns:
        ``(loss, metrics)``: () scalar loss and python floats, token-weighted over
        this call's mask: ``clip_frac`` (low or high), ``clip_frac_low``,
        ``clip_frac_high``, ``ratio_mean``, ``kl`` (0.0 without a reference);
        ``ratio_max`` (max over real tokens); ``num_tokens`` (real tokens in this
        call, to weight micro-batch metrics). With no real token the fractions
        and ``kl`` are 0.0 and ``ratio_mean`` / ``ratio_max`` are 1.0.

    Raises:
        ValueError: ``kl_coef < 0``, ``kl_coef > 0`` without ``ref_logprobs``, or
            any error of the functions it calls.
    """
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    if mask.shape != logprobs.shape:
        raise ValueError(f"mask must be (B, T) = {tuple(logprobs.shape)}, got {tuple(mask.shape)}")
    mask = mask.to(logprobs.device) != 0  # (B, T) bool

    per_token, clipped_low, clipped_high = clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_eps_low=clip_eps_low, clip_eps_high=clip_eps_high
    )  # (B, T) each
    if is_weights is not None:
        if is_weights.shape != per_token.shape:
            raise ValueError(f"is_weights must be (B, T) = {tuple(per_token.shape)}, got {tuple(is_weights.shape)}")
        per_token = per_token * is_weights.detach().to(per_token.dtype)  # (B, T)
    kl = kl_k3(logprobs, ref_logprobs) if ref_logprobs is not None else None  # (B, T) or None
    if kl is not None and kl_coef > 0:
        per_token = per_token + kl_coef * kl  # (B, T)
    loss = aggregate_loss(
        per_token,
        mask,
        loss_agg_mode,
        num_seqs=num_seqs,
        num_tokens=num_tokens,
        norm_constant=norm_constant,
    )

    with torch.no_grad():
        count = mask.sum().to(logprobs.dtype)  # ()
        denom = count.clamp_min(1)  # ()
        zero, one = torch.zeros_like(count), torch.ones_like(count)  # () each
        ratio = torch.exp(logprobs.detach() - old_logprobs.detach())  # (B, T)
        ratio_sum = torch.where(mask, ratio, zero).sum()  # ()
        masked_ratio = torch.where(mask, ratio, torch.full_like(ratio, float("-inf")))  # (B, T)
        ratio_max = torch.where(count > 0, masked_ratio.amax(), one) if ratio.numel() > 0 else one  # ()
        kl_sum = torch.where(mask, kl.detach(), zero).sum() if kl is not None else zero  # ()
        stats = torch.stack(
            [
                ((clipped_low | clipped_high) & mask).sum() / denom,
                (clipped_low & mask).sum() / denom,
                (clipped_high & mask).sum() / denom,
                torch.where(count > 0, ratio_sum / denom, one),
                kl_sum / denom,
                count,
                ratio_max,
            ]
        ).tolist()  # one device sync
    names = ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "kl", "num_tokens", "ratio_max")
    return loss, dict(zip(names, (float(v) for v in stats)))
