"""The trainer's side of one PPO step: scores, the rollout as the trainer sees it, and the update.

:func:`score_samples` weighs the reward model's normalized score and the verifier's reward into one
score per sample; :func:`rollout_view` computes pi_old, the reference's log-probs and the critic's
values once, before the update, without grad; :func:`ppo_update` takes ``ppo_epochs`` passes of
clipped policy and value updates over shuffled mini-batches. The loop that calls them, top to
bottom, is ``grpo/ppo.py``.

Over several ranks (torchrun) each rank samples, scores and views its share of the prompts, then
:func:`gather_rollout` gives every rank the whole batch, so that everything computed from it (GAE,
whitening, metrics, the KL controller, the monitor) is one process's. In the update each rank runs
forward and backward on its own samples of every mini-batch, with the mini-batch's normalizers,
and gradients are summed over ranks: the step of one process with the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from grpo import distributed
from grpo.checkpoint import latest_checkpoint
from grpo.config import PPOConfig
from grpo.logprobs import PackedBatch, completion_logprobs, pack
from grpo.losses import loss_normalizers, policy_loss, truncated_importance_weights
from grpo.reward_model import RewardStats, score_sequences
from grpo.rlhf_losses import explained_variance, value_loss
from grpo.runfolder import NAN_EXIT_CODE, RunStopped
from grpo.trainer import Rollout, rewards_and_valid


@dataclass
class Models:
    policy: torch.nn.Module
    reference: torch.nn.Module  # the frozen starting policy: the KL penalty and sqrt(KL) are measured against it
    critic: torch.nn.Module  # a grpo.critic.ValueModel (wrapped for DDP / FSDP2 over several ranks)
    reward_model: torch.nn.Module | None  # frozen; None: the verifier alone gives the score
    reward_stats: RewardStats | None
    tokenizer: Any
    critic_source: str  # where the critic came from, for the banner


@dataclass
class Scores:
    """Each sample's scores: (B,) tensors."""

    score: torch.Tensor  # what PPO maximizes (before the KL penalty, clipping and the missing-EOS penalty)
    verifier: torch.Tensor  # the verifier's (shaped) reward
    gold: torch.Tensor  # verifier correctness: 1 correct, 0 incorrect, NaN unverifiable
    sample_weight: torch.Tensor  # 1 = takes part in the update
    rm_raw: torch.Tensor | None  # reward-model score as the model gives it
    rm: torch.Tensor | None  # normalized: (raw - mean) / std, the proxy reward


@dataclass
class RolloutView:
    """The rollout as the trainer sees it, computed once before the update without grad: (B, T) unless noted."""

    completion_mask: torch.Tensor  # bool, real completion tokens
    sampler_logprobs: torch.Tensor  # the rollout engine's log-probs of the sampled tokens
    old_logprobs: torch.Tensor  # the trainer's, on the weights that sampled (pi_old)
    ref_logprobs: torch.Tensor  # the frozen reference's
    entropy: torch.Tensor  # of the policy's distribution at each token
    old_values: torch.Tensor  # the critic's V(s_t)
    final_values: torch.Tensor  # (B,) V(s_L) after each completion's last token


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[s : s + size]) for s in range(0, len(indices), size)]


def _pack(batch: Rollout, idx: Sequence[int], pad_id: int, device: torch.device) -> PackedBatch:
    return pack([batch.prompt_ids[i] for i in idx], [batch.completion_ids[i] for i in idx], pad_id).to(device)


def rm_scores(models: Models, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
              batch_size: int) -> torch.Tensor:
    """(B,) raw reward-model scores of prompt + completion, as the reward model's own scorer reads them."""
    rm = models.reward_model
    pad_id = rm.config.get_text_config().pad_token_id
    sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    return score_sequences(rm, sequences, pad_id, batch_size=batch_size).float()


def score_samples(models: Models, batch: Rollout, cfg: PPOConfig) -> Scores:
    """Reward model (normalized) and verifier, weighted into one score per sample."""
    verifier_reward, valid = rewards_and_valid(batch.verdicts)  # (B,) each
    gold = torch.tensor([{"correct": 1.0, "incorrect": 0.0}.get(v.status, math.nan) for v in batch.verdicts])
    weights = cfg.reward
    score = weights.verifier_weight * verifier_reward  # (B,)
    sample_weight = torch.ones(len(batch))
    if weights.verifier_weight > 0 and cfg.algo.mask_unverifiable:
        sample_weight = valid.float()  # an unjudged sample is no evidence either way
    rm_raw = rm = None
    if models.reward_model is not None:
        rm_raw = rm_scores(models, batch.prompt_ids, batch.completion_ids, cfg.optim.micro_batch_size)  # (B,)
        rm = models.reward_stats.normalize(rm_raw)  # (B,)
        score = score + weights.reward_model.weight * rm
    return Scores(score=score, verifier=verifier_reward, gold=gold, sample_weight=sample_weight, rm_raw=rm_raw, rm=rm)


@torch.no_grad()
def rollout_view(models: Models, batch: Rollout, cfg: PPOConfig) -> RolloutView:
    """pi_old, the reference and the critic on the whole batch, micro-batched, without grad."""
    B, pad_id = len(batch), models.tokenizer.pad_token_id
    device = next(models.policy.parameters()).device
    T = max(len(c) for c in batch.completion_ids)
    full = {name: torch.zeros((B, T)) for name in ("sampler", "old", "ref", "entropy", "values")}
    final_values = torch.zeros(B)
    mask = torch.zeros((B, T), dtype=torch.bool)
    for i, (ids, lps) in enumerate(zip(batch.completion_ids, batch.sampler_logprobs)):
        mask[i, : len(ids)] = True
        full["sampler"][i, : len(lps)] = torch.tensor(lps)
    temperature = cfg.rollout.temperature
    for idx in _chunks(range(B), cfg.optim.micro_batch_size):
        mb = _pack(batch, idx, pad_id, device)
        Tm = mb.completion_ids.shape[1]
        old, entropy = completion_logprobs(models.policy, mb, temperature, with_entropy=True,
                                           share_prompts=cfg.model.share_prompts)  # (b, Tm) each
        ref, _ = completion_logprobs(models.reference, mb, temperature,
                                     share_prompts=cfg.model.share_prompts)  # (b, Tm)
        full["old"][idx, :Tm], full["ref"][idx, :Tm] = old.cpu(), ref.cpu()
        full["entropy"][idx, :Tm] = entropy.cpu()
    for idx in _chunks(range(B), cfg.critic.optim.micro_batch_size):
        mb = _pack(batch, idx, pad_id, next(models.critic.parameters()).device)
        values, final = models.critic(mb)  # (b, Tm), (b,)
        full["values"][idx, : values.shape[1]], final_values[idx] = values.cpu(), final.cpu()
    real = {name: torch.where(mask, t, torch.zeros(())) for name, t in full.items()}  # padding -> 0
    return RolloutView(completion_mask=mask, sampler_logprobs=real["sampler"], old_logprobs=real["old"],
                       ref_logprobs=real["ref"], entropy=real["entropy"], old_values=real["values"],
                       final_values=final_values)


def _cat_rows(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """(sum B_r, max T_r) from (B_r, T_r) parts, zero-padded on the right; 1-D parts simply concatenated."""
    if parts[0].dim() == 1:
        return torch.cat(list(parts))
    out = torch.zeros((sum(p.shape[0] for p in parts), max(p.shape[1] for p in parts)), dtype=parts[0].dtype)
    row = 0
    for p in parts:
        out[row : row + p.shape[0], : p.shape[1]] = p
        row += p.shape[0]
    return out


def gather_rollout(batch: Rollout, scores: Scores, view: RolloutView) -> tuple[Rollout, Scores, RolloutView,
                                                                                list[range]]:
    """Every rank's share of the step, in rank order, on every rank; and each rank's range of it.

    One process: its own, and ``[range(B)]``. The per-sample tensors are small beside the models
    (B x T floats), so the whole batch's view costs every rank little and keeps all that is computed
    from it, on every rank, exactly what one process computes.
    """
    info = distributed.current()
    if not info.is_distributed:
        return batch, scores, view, [range(len(batch))]
    parts = distributed.gather_objects((batch, scores, view), "gathering the rollout")
    whole = Rollout()
    shares, start = [], 0
    for part, _, _ in parts:
        whole.extend(part)
        shares.append(range(start, start + len(part)))
        start += len(part)

    def joined(field: str, items: list[Any]) -> torch.Tensor | None:
        values = [getattr(item, field) for item in items]
        return None if values[0] is None else _cat_rows(values)

    score_parts, view_parts = [p[1] for p in parts], [p[2] for p in parts]
    whole_scores = Scores(**{f: joined(f, score_parts) for f in Scores.__dataclass_fields__})
    whole_view = RolloutView(**{f: joined(f, view_parts) for f in RolloutView.__dataclass_fields__})
    return whole, whole_scores, whole_view, shares


def _shuffle(B: int, seed: int, step: int, epoch: int) -> list[int]:
    """The order of one PPO epoch: a function of (seed, step, epoch) alone, so it is the same on every
    rank, with any number of ranks, and after a resume."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + epoch)
    return torch.randperm(B, generator=generator).tolist()


def _micro_batches(mini: Sequence[int], shares: Sequence[range], size: int) -> list[list[int]]:
    """This rank's micro-batches of a mini-batch (its own samples, ``size`` at a time), padded with empty
    ones to the most any rank has: every forward and backward of a sharded model is a collective."""
    own = [list(i for i in mini if i in share) for share in shares]
    mine = own[distributed.current().rank] if len(shares) > 1 else list(mini)
    most = max(math.ceil(len(o) / size) for o in own)
    chunks = _chunks(mine, size)
    return chunks + [[] for _ in range(most - len(chunks))]


def _empty_pack(pad_id: int, device: torch.device) -> PackedBatch:
    """A one-token stand-in for a rank with no sample in a micro-batch (its loss is multiplied by 0)."""
    return pack([[pad_id]], [[pad_id]], pad_id).to(device)


class _Means:
    """Weighted means of scalar metrics over micro-batches."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, float], weight: float = 1.0) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] if self.weights[k] else 0.0 for k in self.sums}


def stop_if_not_finite(value: torch.Tensor | float, what: str, where: str, run_dir: Path) -> None:
    """A loss, gradient norm or reward that is not a number stops the run before any optimizer step uses it."""
    value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(value):
        newest = latest_checkpoint(run_dir)
        raise RunStopped(
            f"rlvr ppo: error: {where}: the {what} is {float(value)} (not a number); stopped before the optimizer "
            f"step. The newest checkpoint is intact: {newest if newest is not None else 'none was saved yet'}. "
            "A NaN reward: check the reward model's scores on a few samples and its reward_stats.json (or the "
            "verifier's rewards); a NaN loss or gradient: lower optim.lr / critic.optim.lr", NAN_EXIT_CODE)


def ppo_update(models: Models, batch: Rollout, view: RolloutView, advantages: torch.Tensor, returns: torch.Tensor,
               loss_mask: torch.Tensor, cfg: PPOConfig, optimizers: dict[str, Any], *, train_policy: bool,
               step: int, run_dir: Path, shares: Sequence[range] | None = None) -> dict[str, float]:
    """``ppo_epochs`` passes over the batch in shuffled mini-batches; one optimizer step per mini-batch
    for the critic and (unless ``train_policy`` is False: the critic warm-up) for the policy.

    ``advantages``, ``returns``, ``loss_mask``: (B, T) of the whole batch; ``loss_mask`` is the
    completion mask times each sample's weight. Micro-batch losses get the mini-batch's normalizers,
    so they sum to the mini-batch loss. ``shares``: each rank's range of the batch (``gather_rollout``);
    this rank runs forward and backward on its own samples only, and the gradients summed over ranks
    are those of the whole mini-batch. None: one process.
    """
    algo, pad_id = cfg.algo, models.tokenizer.pad_token_id
    policy, critic = models.policy, models.critic
    policy_device, critic_device = next(policy.parameters()).device, next(critic.parameters()).device
    B = len(batch)
    shares = list(shares) if shares is not None else [range(B)]
    several = len(shares) > 1
    token_keys = ("loss/clip_frac", "loss/clip_frac_low", "loss/clip_frac_high", "loss/ratio_mean",
                  "critic/value_clip_frac", "critic/value_mse")
    token_stats, step_stats = _Means(), _Means()
    ratio_max = 0.0
    norm_constant = float(cfg.rollout.max_new_tokens)
    for epoch in range(algo.ppo_epochs):
        order = _shuffle(B, cfg.seed, step, epoch)
        for m, mini in enumerate(_chunks(order, algo.mini_batch_size)):
            where = f"step {step}, PPO epoch {epoch + 1}, mini-batch {m + 1}"
            num_seqs, num_tokens = loss_normalizers(loss_mask[mini])  # the mini-batch's: micro-batches sum to it
            # policy: clipped surrogate on per-token advantages (the KL is in the reward, not in this loss)
            if train_policy:
                optimizers["policy"].zero_grad(set_to_none=True)
                policy_total = 0.0
                micro = _micro_batches(mini, shares, cfg.optim.micro_batch_size)
                for k, idx in enumerate(micro):
                    with distributed.gradient_sync(policy, k == len(micro) - 1):
                        mb = _pack(batch, idx, pad_id, policy_device) if idx else _empty_pack(pad_id, policy_device)
                        logprobs, _ = completion_logprobs(policy, mb, cfg.rollout.temperature,
                                                          share_prompts=cfg.model.share_prompts)  # (b, Tm)
                        if not idx:  # nothing of this rank here: join the collectives, add nothing
                            (logprobs.sum() * 0.0).backward()
                            continue
                        Tm = mb.completion_ids.shape[1]
                        sampler = view.sampler_logprobs[idx, :Tm].to(policy_device)
                        if algo.tis:  # ratio against the trainer's pi_old; tokens weighted by min(pi_old / pi_sampler, cap)
                            old = view.old_logprobs[idx, :Tm].to(policy_device)
                            is_weights = truncated_importance_weights(old, sampler, algo.tis_cap)
                        else:  # ratio against the sampler's log-probs
                            old, is_weights = sampler, None
                        loss, metrics = policy_loss(
                            logprobs, old, advantages[idx, :Tm].to(policy_device), loss_mask[idx, :Tm].to(policy_device),
                            clip_eps_low=algo.clip_eps_low, clip_eps_high=algo.clip_eps_high,
                            loss_agg_mode=algo.loss_agg_mode, num_seqs=num_seqs, num_tokens=num_tokens,
                            norm_constant=norm_constant, is_weights=is_weights,
                        )
                        if not several:  # over ranks the gradient norm below (the same on all) catches it
                            stop_if_not_finite(loss, "policy loss", where, run_dir)
                        loss.backward()
                    policy_total += float(loss.detach())
                    ratio_max = max(ratio_max, metrics["ratio_max"])
                    token_stats.add({f"loss/{k}": metrics[k] for k in
                                     ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean")},
                                    metrics["num_tokens"])
                grad_norm = distributed.to_float(torch.nn.utils.clip_grad_norm_(
                    policy.parameters(), cfg.optim.max_grad_norm or math.inf))  # 0 = no clipping
                stop_if_not_finite(grad_norm, "policy gradient norm", where, run_dir)
                optimizers["policy"].step()
                optimizers["policy_scheduler"].step()
                step_stats.add({"loss/policy": policy_total, "optim/grad_norm": grad_norm})

            # critic: clipped value loss toward the GAE returns
            optimizers["critic"].zero_grad(set_to_none=True)
            value_total = 0.0
            micro = _micro_batches(mini, shares, cfg.critic.optim.micro_batch_size)
            for k, idx in enumerate(micro):
                with distributed.gradient_sync(critic, k == len(micro) - 1):
                    mb = _pack(batch, idx, pad_id, critic_device) if idx else _empty_pack(pad_id, critic_device)
                    values, _ = critic(mb)  # (b, Tm)
                    if not idx:
                        (values.sum() * 0.0).backward()
                        continue
                    Tm = values.shape[1]
                    loss, metrics = value_loss(
                        values, view.old_values[idx, :Tm].to(critic_device), returns[idx, :Tm].to(critic_device),
                        loss_mask[idx, :Tm].to(critic_device), clip_eps=algo.value_clip_eps,
                        loss_agg_mode=algo.loss_agg_mode, num_seqs=num_seqs, num_tokens=num_tokens,
                        norm_constant=norm_constant,
                    )
                    if not several:
                        stop_if_not_finite(loss, "value loss", where, run_dir)
                    loss.backward()
                value_total += float(loss.detach())
                token_stats.add({"critic/value_clip_frac": metrics["value_clip_frac"],
                                 "critic/value_mse": metrics["value_mse"]}, metrics["num_tokens"])
            grad_norm = distributed.to_float(torch.nn.utils.clip_grad_norm_(
                critic.parameters(), cfg.critic.optim.max_grad_norm or math.inf))
            stop_if_not_finite(grad_norm, "critic gradient norm", where, run_dir)
            optimizers["critic"].step()
            optimizers["critic_scheduler"].step()
            step_stats.add({"loss/value": value_total, "critic/grad_norm": grad_norm})

    if several:  # token-weighted means and the summed losses over every rank's micro-batches
        keys = [k for k in token_keys if train_policy or not k.startswith("loss/")]
        sums = distributed.sum_over_ranks(
            [token_stats.sums.get(k, 0.0) for k in keys] + [token_stats.weights.get(k, 0.0) for k in keys]
            + [step_stats.sums.get(k, 0.0) for k in ("loss/policy", "loss/value")], "summing the update metrics")
        token_stats.sums, token_stats.weights = dict(zip(keys, sums)), dict(zip(keys, sums[len(keys):]))
        for k, total in zip(("loss/policy", "loss/value"), sums[2 * len(keys):]):
            if k in step_stats.sums:
                step_stats.sums[k] = total
        ratio_max = distributed.max_over_ranks([ratio_max], "the largest ratio")[0]
    out = {**token_stats.means(), **step_stats.means()}
    if train_policy:
        out["loss/ratio_max"] = ratio_max
    out["optim/lr"] = optimizers["policy_scheduler"].get_last_lr()[0]
    out["critic/lr"] = optimizers["critic_scheduler"].get_last_lr()[0]
    return out


def rollout_metrics(scores: Scores, view: RolloutView, kl: torch.Tensor, rewards: torch.Tensor,
                    returns: torch.Tensor, advantages: torch.Tensor, loss_mask: torch.Tensor,
                    sequence_kl: torch.Tensor, *, kl_coef: float, reward_clip: float | None,
                    tis_cap: float | None) -> dict[str, float]:
    """What one step's rollout looked like to the trainer: scores, KL, the critic's fit, the probe.

    ``kl``, ``rewards``, ``returns``, ``advantages`` (before whitening), ``loss_mask``: (B, T);
    ``sequence_kl``: (B,). ``tis_cap``: None when TIS is off.
    """
    mask = view.completion_mask
    used = loss_mask > 0  # (B, T) tokens that take part in the update
    out = {
        "reward/mean": float(scores.score.mean()),  # what PPO maximizes, before clipping and the KL penalty
        "reward/clip_frac": float((scores.score.abs() > reward_clip).float().mean()) if reward_clip else 0.0,
        "reward/kl_penalty": float(-kl_coef * torch.where(mask, kl, 0.0).sum(-1).mean()),
        "reward/total": float(rewards.sum(-1).mean()),  # per sample: the clipped, penalized score minus the KL penalty
        "kl/sequence": float(sequence_kl.mean()),  # nats per sample, summed over its tokens
        "kl/coef": kl_coef,
        "critic/explained_variance": explained_variance(view.old_values, returns, loss_mask),
        "critic/value_mean": float(view.old_values[used].mean()) if used.any() else 0.0,
        "critic/returns_mean": float(returns[used].mean()) if used.any() else 0.0,
        "advantages/mean": float(advantages[used].mean()) if used.any() else 0.0,
        "loss/entropy": float(view.entropy[mask].mean()),
        # the agreement probe: sampler vs trainer on the weights that sampled this batch
        "rollout/logprob_diff": float((view.old_logprobs - view.sampler_logprobs)[mask].abs().mean()),
    }
    if tis_cap is not None:
        tis = truncated_importance_weights(view.old_logprobs, view.sampler_logprobs, tis_cap)[mask]
        out.update({"rollout/tis_weight_mean": float(tis.mean()),
                    "rollout/tis_capped_frac": float((tis >= tis_cap).float().mean())})
    if scores.rm is not None:
        out.update({"reward/rm_mean": float(scores.rm.mean()), "reward/rm_raw_mean": float(scores.rm_raw.mean())})
    return out


def proxy_and_gold(scores: Scores) -> tuple[float, float]:
    """Mean proxy (normalized reward-model score) and mean gold (verifier correctness) of the same samples:
    those the verifier could judge (NaN, NaN when it judged none)."""
    judged = ~torch.isnan(scores.gold)  # (B,)
    if scores.rm is None or not judged.any():
        return math.nan, math.nan
    return float(scores.rm[judged].mean()), float(scores.gold[judged].mean())
